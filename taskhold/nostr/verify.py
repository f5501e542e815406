"""Checking a NIP-01 event's id and signature without trusting anything about its origin.

``Event.from_json`` in nostr-sdk parses a tampered event happily, and it accepts upper-case hex
ids. So :func:`verify_event` insists on lower-case hex (one spelling per event, which makes event
ids usable as replay keys), calls ``verify()``, and recomputes the id from the dict itself, so the
dict a caller stores or embeds is exactly the one that was signed, whatever nostr-sdk normalises.

:func:`verify_events` checks many at once (a rebuild's whole log). Both accept a strictly
well-formed event whose recomputed id is its ``id`` and whose BIP-340 signature holds on
libsecp256k1 (coincurve) without the round trip through nostr-sdk's JSON parser, which costs
five times the signature check (a signed request is checked so on every write); any other
event gets nostr-sdk's answer as well, so the fast path never refuses what it would accept.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson
from coincurve import PublicKeyXOnly
from nostr_sdk import Event

from .lean_process import LeanProcess

__all__ = ["MIN_EVENTS_PER_JOB", "nip01_id", "verify_event", "verify_events"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


def verify_event(event: object) -> bool:
    """True if ``event`` is a NIP-01 event dict whose id and Schnorr signature both check out.

    Any malformed input gives False, never an exception: this is called on untrusted data.
    """
    if _verifies_fast(event):  # the strictly well-formed event every client sends
        return True
    return _verifies_through_sdk(event)


def _verifies_through_sdk(event: object) -> bool:
    if not isinstance(event, dict):
        return False
    event_id, pubkey, sig = event.get("id"), event.get("pubkey"), event.get("sig")
    if not (_is_hex(_HEX64, event_id) and _is_hex(_HEX64, pubkey) and _is_hex(_HEX128, sig)):
        return False
    try:
        parsed = Event.from_json(json.dumps(event, ensure_ascii=False, allow_nan=False))
        if not parsed.verify():
            return False
        return nip01_id(event) == event_id
    except Exception:  # untrusted input: every failure means "does not verify"
        return False


def _is_hex(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def nip01_id(event: dict[str, Any]) -> str:
    """The NIP-01 id: sha256 of the event's canonical serialisation, lower hex."""
    fields = [event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]]
    return hashlib.sha256(_canonical([0, *fields]).encode()).hexdigest()


def _canonical(serialized: list[Any]) -> str:
    """NIP-01's serialisation of ``[0, pubkey, created_at, kind, tags, content]``."""
    return json.dumps(serialized, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


MIN_EVENTS_PER_JOB = 5_000
"""Below this many events per process, starting one (a fresh interpreter) costs more than it
saves."""


def verify_events(events: Sequence[object], *, jobs: int = 1) -> list[bool]:
    """``verify_event`` of each event, in order, spread over up to ``jobs`` processes in
    contiguous chunks (this process takes the first; the others import only this module:
    ``lean_process``)."""
    jobs = max(1, min(jobs, len(events) // MIN_EVENTS_PER_JOB))
    if jobs == 1:
        return _verify_chunk(events)
    size = -(-len(events) // jobs)
    chunks = [events[start : start + size] for start in range(0, len(events), size)]
    others: list[LeanProcess[Sequence[object], list[bool]]] = []
    try:
        for chunk in chunks[1:]:
            others.append(LeanProcess(_verify_chunk, chunk))
        verified = _verify_chunk(chunks[0])
        for other in others:
            verified.extend(other.result())
    finally:
        for other in others:
            other.close()
    return verified


def _verify_chunk(events: Sequence[object]) -> list[bool]:
    return [verify_event(event) for event in events]


def _verifies_fast(event: object) -> bool:
    """Well-formed, its id recomputed and its signature checked here; False means "ask
    ``verify_event``", never "does not verify"."""
    if type(event) is not dict:
        return False
    event_id, pubkey, sig = event.get("id"), event.get("pubkey"), event.get("sig")
    created_at, kind = event.get("created_at"), event.get("kind")
    content, tags = event.get("content"), event.get("tags")
    if not (_is_hex(_HEX64, event_id) and _is_hex(_HEX64, pubkey) and _is_hex(_HEX128, sig)):
        return False
    assert isinstance(pubkey, str) and isinstance(sig, str)
    if type(created_at) is not int or type(kind) is not int or type(content) is not str:
        return False
    if created_at < 0 or not 0 <= kind <= 0xFFFF or type(tags) is not list:
        return False
    for tag in tags:
        if type(tag) is not list or not tag or any(type(value) is not str for value in tag):
            return False
    try:
        digest = _id_digest([0, pubkey, created_at, kind, tags, content])
        return digest.hex() == event_id and bool(_xonly(pubkey).verify(bytes.fromhex(sig), digest))
    except Exception:  # not a key on the curve, a lone surrogate…: verify_event decides
        return False


def _id_digest(serialized: list[Any]) -> bytes:
    """``nip01_id``'s sha256, of a serialisation whose types ``_verifies_fast`` checked exactly
    (str, int, lists of lists of str): orjson writes their compact JSON as ``json.dumps`` with
    ``ensure_ascii=False`` does (the quote, the backslash and the five short escapes, other
    control characters as ``\\u00XX``, the rest verbatim, UTF-8 encoded already) at a fraction
    of its cost; what it refuses (a lone surrogate, an integer beyond 64 bits) goes to the
    ``json`` encoder. A text that differed anyway would only send the event to
    ``verify_event``, whose answer is the one the fast path gives."""
    try:
        return hashlib.sha256(orjson.dumps(serialized)).digest()
    except orjson.JSONEncodeError:
        return hashlib.sha256(_canonical(serialized).encode()).digest()


@lru_cache(maxsize=4096)
def _xonly(pubkey: str) -> PublicKeyXOnly:
    return PublicKeyXOnly(bytes.fromhex(pubkey))
