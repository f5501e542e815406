"""The state hash of each state a rebuild replays, without encoding every field of every state.

The writer hashes ``canonical_json(task_to_data(task))`` (``nostr.entries.state_hash``): the
whole task, some 90 fields, sorted by name. A transition changes a few of them, and the state
machine's ``replace`` hands the others on as the same objects. So the JSON of each field's value
is kept from one state of a task to the next and encoded again only when the field holds
another object, or an object that could have changed in place (a dict, a list, a tuple that may
hold one); an atom, a string or an enum member cannot. ``json`` writes a dict with sorted keys
as its encoded keys and values, each ``"key":value``, joined by commas, so the text put together
here is the text ``canonical_json`` writes, byte for byte, and so is its hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
from enum import Enum
from json.encoder import encode_basestring
from operator import attrgetter
from typing import Any

from taskhold.nostr.entries import canonical_json
from taskhold.store.codec import field_to_data
from taskhold.tasks.model import Task

__all__ = ["StateDigests"]

_EMPTY: dict[type, str] = {dict: "{}", list: "[]", tuple: "[]"}
"""An empty container's JSON (``as_plain`` keeps a tuple a tuple; ``json`` writes it a list)."""

_CONSTANTS = {None: "null", True: "true", False: "false"}

_SHARED_UP_TO = 24
"""Encoded values up to this long are shared between tasks (``null``, ``0``, ``[]``…)."""


class StateDigests:
    """``state_hash(task_to_data(task))`` of each task state, given the states of a task in
    order (any number of tasks, interleaved)."""

    def __init__(self) -> None:
        self._names = sorted(field.name for field in dataclasses.fields(Task))
        self._read = attrgetter(*self._names)
        self._keys = [canonical_json(name) + ":" for name in self._names]
        self._unchanging: set[type] = {str, int, float, bool, type(None), bytes}
        self._last: dict[str, tuple[tuple[Any, ...], list[str]]] = {}
        """Per task: its last state's field values (kept alive, so ``is`` compares them
        safely) and their JSON."""
        self._shared: dict[str, str] = {}

    def digest(self, task: Task) -> str:
        values: tuple[Any, ...] = self._read(task)
        last = self._last.get(task.task_id)
        if last is None:
            encoded = [self._encode(task, index, value) for index, value in enumerate(values)]
        else:
            before, kept = last
            encoded = kept.copy()
            unchanging = self._unchanging
            for index, value, old in zip(range(len(values)), values, before, strict=True):
                if value is not old or type(value) not in unchanging:
                    encoded[index] = self._encode(task, index, value)
        self._last[task.task_id] = (values, encoded)
        text = "{" + ",".join(map(str.__add__, self._keys, encoded)) + "}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _encode(self, task: Task, index: int, value: Any) -> str:
        kind = type(value)
        if kind is str:  # what json's encoder calls for a str (for ensure_ascii=False)
            encoded = encode_basestring(value)
        elif kind is int:  # and for an int, and None, True and False
            return int.__repr__(value)
        elif kind is bool or value is None:
            return _CONSTANTS[value]
        elif kind in _EMPTY and not value:
            return _EMPTY[kind]
        else:
            if isinstance(value, Enum):
                self._unchanging.add(kind)  # its members are singletons, never changed
            encoded = canonical_json(field_to_data(task, self._names[index]))
        if len(encoded) <= _SHARED_UP_TO:
            encoded = self._shared.setdefault(encoded, encoded)
        return encoded
