"""The per-event half of the audit, spread over processes (``taskhold audit --jobs N``).

An event's verdict (shape, NIP-01 id, BIP-340 signature) and what ``parse_entry`` reads from a
log entry depend on that event alone: an entry is read against its own author, and only later
does the rotation chain decide whether that author was the operator key at its place. So these
are computed in contiguous chunks, one per process (this process takes the first), and every
check over the whole log runs afterwards here, as in a serial audit: the same findings, in the
same order, whatever ``jobs`` is.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

from .entry import AuditKinds, Entry, parse_entry
from .findings import Finding
from .nip01 import Verdict, verify_event

__all__ = ["MIN_EVENTS_PER_JOB", "Examined", "examine", "examine_all"]

MIN_EVENTS_PER_JOB = 500
"""Below this many events per process, starting one costs more than it saves."""

Examined = tuple[Verdict, tuple[Entry | None, list[Finding]] | None]
"""An event's verdict and, for a verified log entry, ``parse_entry``'s reading of it."""


def examine(events: Sequence[object], kinds: AuditKinds) -> list[Examined]:
    """Each event's verdict and, for a verified entry of ``kinds.entry``, its reading."""
    examined: list[Examined] = []
    for event in events:
        verdict = verify_event(event)
        reading = None
        if verdict is Verdict.OK:
            assert isinstance(event, Mapping)
            if event["kind"] == kinds.entry:
                reading = parse_entry(event, event["pubkey"], kinds)
        examined.append((verdict, reading))
    return examined


def examine_all(events: Sequence[object], kinds: AuditKinds, jobs: int = 1) -> list[Examined]:
    """``examine`` over ``events`` with up to ``jobs`` processes, results in event order."""
    jobs = max(1, min(jobs, len(events) // MIN_EVENTS_PER_JOB))
    if jobs == 1:
        return examine(events, kinds)
    size = -(-len(events) // jobs)
    chunks = [events[start : start + size] for start in range(0, len(events), size)]
    context = multiprocessing.get_context()
    with ProcessPoolExecutor(max_workers=len(chunks) - 1, mp_context=context) as pool:
        pending = [pool.submit(examine, chunk, kinds) for chunk in chunks[1:]]
        examined = examine(chunks[0], kinds)
        for future in pending:
            examined.extend(future.result())
    return examined
