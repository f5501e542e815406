"""The per-event half of the audit, spread over processes (``taskhold audit --jobs N``).

An event's verdict (shape, NIP-01 id, BIP-340 signature) and what ``parse_entry`` reads from a
log entry depend on that event alone: an entry is read against its own author, and only later
does the rotation chain decide whether that author was the operator key at its place. So these
are computed in contiguous chunks by several processes (this one among them), put back in
order, and every check over the whole log runs afterwards here, as in a serial audit: the same
findings, in the same order, whatever ``jobs`` is.

The other processes are forked from this one when it runs no other thread: they find the events
in memory, so nothing is sent to them; the processes take small chunks in turn, so a process
the rest of the machine slows takes fewer, and each sends back its chunks' readings as plain
tuples in one message. Otherwise (a fork would copy the other threads' locks in whatever state
they are) they are spawned and sent one contiguous chunk each.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise
from multiprocessing.connection import Connection
from typing import Any, cast

from .entry import AuditKinds, Entry, parse_entry
from .findings import Finding
from .nip01 import Verdict, verify_event

__all__ = ["MIN_EVENTS_PER_JOB", "Examined", "examine", "examine_all"]

MIN_EVENTS_PER_JOB = 500
"""Below this many events per process, starting one costs more than it saves."""

PARENT_SHARE = 0.8
"""When the other processes are spawned: this process's chunk, against another process's 1 (it
also sends them theirs)."""

CHUNK_EVENTS = 128
"""At most this many events a chunk when the processes are forked and take chunks in turn."""

Examined = tuple[Verdict, tuple[Entry | None, list[Finding]] | None]
"""An event's verdict and, for a verified log entry, ``parse_entry``'s reading of it."""

_VERDICTS = {verdict.value: verdict for verdict in Verdict}
_forked: tuple[Sequence[object], AuditKinds, _Chunks] | None = None
"""The events and kinds a forked process reads its chunk from (set only around the fork)."""


def examine(events: Sequence[object], kinds: AuditKinds) -> list[Examined]:
    """Each event's verdict and, for a verified entry of ``kinds.entry``, its reading."""
    examined: list[Examined] = []
    for event in events:
        verdict = verify_event(event)
        reading = None
        if verdict is Verdict.OK:
            event = cast("Mapping[str, Any]", event)  # verify_event saw it is one
            if event["kind"] == kinds.entry:
                reading = parse_entry(event, event["pubkey"], kinds)
        examined.append((verdict, reading))
    return examined


def _plain(examined: list[Examined]) -> list[Any]:
    """``examined`` as plain tuples (an entry by its fields), quick to unpickle."""
    plain: list[Any] = []
    for verdict, reading in examined:
        if reading is None:
            plain.append((verdict.value, None))
            continue
        entry, findings = reading
        fields = None if entry is None else tuple(entry)
        plain.append((verdict.value, fields, findings))
    return plain


def _pack(examined: list[Examined]) -> bytes:
    return pickle.dumps(_plain(examined), protocol=pickle.HIGHEST_PROTOCOL)


def _restore(plain: list[Any]) -> list[Examined]:
    examined: list[Examined] = []
    for item in plain:
        verdict = _VERDICTS[item[0]]
        if item[1] is None and len(item) == 2:
            examined.append((verdict, None))
        else:
            entry = None if item[1] is None else Entry(*item[1])
            examined.append((verdict, (entry, item[2])))
    return examined


def _unpack(data: bytes) -> list[Examined]:
    return _restore(pickle.loads(data))


def _unpack_chunks(data: bytes) -> dict[int, list[Examined]]:
    """A forked process's message: the chunks it examined, by number."""
    return {number: _restore(plain) for number, plain in pickle.loads(data)}


class _Chunks:
    """The events cut in chunks that the processes take in turn from a shared counter, so that
    a process slowed by the rest of the machine takes fewer; process ``k`` starts with chunk
    ``k`` so that each takes at least one."""

    def __init__(self, count: int, jobs: int, context: Any) -> None:
        self.size = max(1, min(CHUNK_EVENTS, count // (jobs * 8)))
        self.count = -(-count // self.size)
        self.next = context.Value("q", jobs)

    def claim(self) -> int | None:
        """The next chunk nobody took, or None."""
        with self.next.get_lock():
            number = self.next.value
            self.next.value = number + 1
        return number if number < self.count else None

    def numbers(self, first: int) -> Iterator[int]:
        """Chunk ``first``, then every chunk this process claims."""
        if first < self.count:
            yield first
        while (number := self.claim()) is not None:
            yield number

    def events(self, events: Sequence[object], number: int) -> Sequence[object]:
        return events[number * self.size : (number + 1) * self.size]


def _examine_forked(first: int, connection: Connection) -> None:
    """In a forked process: examine chunks of the parent's events, send them in one message."""
    assert _forked is not None
    events, kinds, chunks = _forked
    done = [(n, _plain(examine(chunks.events(events, n), kinds))) for n in chunks.numbers(first)]
    connection.send_bytes(pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL))
    connection.close()


def _bounds(count: int, jobs: int) -> list[tuple[int, int]]:
    """``jobs`` contiguous non-empty chunks of ``range(count)`` (``jobs <= count``), the first
    (this process's, which also sends the others theirs) smaller."""
    first = round(count * PARENT_SHARE / (PARENT_SHARE + jobs - 1))
    first = min(max(first, 1), count - jobs + 1)
    cuts = [first + (count - first) * job // (jobs - 1) for job in range(jobs)]
    return [(0, first), *pairwise(cuts)]


def _may_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def examine_all(events: Sequence[object], kinds: AuditKinds, jobs: int = 1) -> list[Examined]:
    """``examine`` over ``events`` with up to ``jobs`` processes, results in event order."""
    jobs = max(1, min(jobs, len(events) // MIN_EVENTS_PER_JOB))
    if jobs == 1:
        return examine(events, kinds)
    if not _may_fork():
        return _examine_spawned(events, kinds, _bounds(len(events), jobs))
    global _forked
    context = multiprocessing.get_context("fork")
    chunks = _Chunks(len(events), jobs, context)
    children = []
    _forked = (events, kinds, chunks)
    try:
        for first in range(1, jobs):
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(target=_examine_forked, args=(first, sender))
            child.start()
            sender.close()
            children.append((child, receiver))
    finally:
        _forked = None
    done = {n: examine(chunks.events(events, n), kinds) for n in chunks.numbers(0)}
    for child, receiver in children:
        try:
            done.update(_unpack_chunks(receiver.recv_bytes()))
        except (EOFError, OSError):  # the process died: its chunks are examined below
            pass
        finally:
            receiver.close()
            child.join()
    examined: list[Examined] = []
    for number in range(chunks.count):
        part = done.get(number)
        examined.extend(part if part is not None else examine(chunks.events(events, number), kinds))
    return examined


def _examine_spawned(
    events: Sequence[object], kinds: AuditKinds, bounds: list[tuple[int, int]]
) -> list[Examined]:
    chunks = [events[start:stop] for start, stop in bounds]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(chunks) - 1, mp_context=context) as pool:
        pending = [pool.submit(_examine_packed, chunk, kinds) for chunk in chunks[1:]]
        examined = examine(chunks[0], kinds)
        for future in pending:
            examined.extend(_unpack(future.result()))
    return examined


def _examine_packed(events: Sequence[object], kinds: AuditKinds) -> bytes:
    return _pack(examine(events, kinds))
