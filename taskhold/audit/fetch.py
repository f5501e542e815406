"""Reading the operator's log from relays over plain NIP-01 websockets.

Entries are asked for by their indexed sequence number (``#o``) in batches, never paged by
``created_at`` (relays cap each answer at about 500 events, and one second can hold more).
How far to ask comes from the checkpoint (kind 30078, ``d`` = ``taskhold-log-head``) and the
highest ``o`` among the newest entries; past that the scan goes on until a batch comes back
empty. Each relay is read on its own connection; the union keeps every distinct event (by id
and body, so a relay serving an altered copy cannot hide the real one). A relay that is down,
slow or refuses is reported, never fatal.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from .checks import CHECKPOINT_D
from .entry import AuditKinds
from .nip01 import Verdict, verify_event

__all__ = ["FetchResult", "FetchSettings", "RelayReport", "fetch_log"]


@dataclass(frozen=True, slots=True)
class FetchSettings:
    batch_size: int = 250
    """``#o`` values per REQ; half the usual cap, so equivocated numbers still fit."""
    relay_cap: int = 500
    """A REQ that returns this many events may be truncated: its range is split and re-asked."""
    timeout_s: float = 10.0
    """Connecting, and waiting for each REQ's EOSE."""
    max_empty_batches: int = 8
    """Consecutive empty batches past the last entry found before the scan gives up."""


@dataclass(slots=True)
class RelayReport:
    url: str
    ok: bool = False
    error: str | None = None
    entries: int = 0
    requests: int = 0
    highest_gseq: int | None = None
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "error": self.error,
            "entries": self.entries,
            "requests": self.requests,
            "highest_gseq": self.highest_gseq,
            "notices": self.notices,
        }


@dataclass(frozen=True, slots=True)
class FetchResult:
    entries: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    deletions: list[dict[str, Any]]
    relays: list[RelayReport]

    @property
    def readable(self) -> bool:
        """True when at least one relay was read to the end."""
        return any(relay.ok for relay in self.relays)


class RelayRefused(Exception):
    """The relay closed a subscription (NIP-01 ``CLOSED``)."""


class _Session:
    def __init__(self, ws: ClientConnection, report: RelayReport, timeout_s: float) -> None:
        self._ws = ws
        self._report = report
        self._timeout_s = timeout_s
        self._ids = itertools.count()

    async def query(self, filter_: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every event the relay stores for ``filter_``, up to its EOSE."""
        sub = f"audit-{next(self._ids)}"
        self._report.requests += 1
        await self._ws.send(json.dumps(["REQ", sub, filter_]))
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(self._timeout_s):
            while True:
                message = json.loads(await self._ws.recv())
                if not isinstance(message, list) or len(message) < 2:
                    continue
                verb, arg = message[0], message[1]
                if verb == "EVENT" and arg == sub and len(message) >= 3:
                    if isinstance(message[2], dict):
                        events.append(message[2])
                elif verb == "EOSE" and arg == sub:
                    break
                elif verb == "CLOSED" and arg == sub:
                    raise RelayRefused(str(message[2]) if len(message) > 2 else "closed")
                elif verb == "NOTICE":
                    self._report.notices.append(str(arg))
        await self._ws.send(json.dumps(["CLOSE", sub]))
        return events


def _highest(
    events: Iterable[Mapping[str, Any]], operator: str | Sequence[str], tag_name: str
) -> int | None:
    """The highest ``tag_name`` number among events that verify as the operator's: a hint of
    how far to scan, never a check."""
    keys = {operator} if isinstance(operator, str) else set(operator)
    highest = None
    for event in events:
        if verify_event(event) is not Verdict.OK or event["pubkey"] not in keys:
            continue
        for tag in event["tags"]:
            if tag[0] == tag_name and len(tag) >= 2 and tag[1].isdigit():
                highest = max(highest or 0, int(tag[1]))
    return highest


def _rotated_to(events: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> list[str]:
    """New keys named by valid ``KeyRotated`` entries signed by one of ``keys``."""
    found: list[str] = []
    for event in events:
        if event.get("pubkey") not in keys or verify_event(event) is not Verdict.OK:
            continue
        tags = {t[0]: t[1] for t in event["tags"] if len(t) >= 2}
        new_key = tags.get("new_key", "")
        rotation = tags.get("op") == "KeyRotated" and len(new_key) == 64
        if rotation and new_key not in keys and new_key not in found:
            found.append(new_key)
    return found


class _RelayReader:
    def __init__(
        self, session: _Session, operator: str, kinds: AuditKinds, settings: FetchSettings
    ) -> None:
        self.session = session
        self.operator = operator
        self.keys: list[str] = [operator]
        """The operator key and every key a rotation entry by one of them handed over to."""
        self.kinds = kinds
        self.settings = settings
        self.entries: list[dict[str, Any]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.deletions: list[dict[str, Any]] = []

    def _filter(self, kind: int, **extra: Any) -> dict[str, Any]:
        return {"authors": list(self.keys), "kinds": [kind], **extra}

    async def _scan(self, first: int, end: int) -> list[dict[str, Any]]:
        """Entries with ``o`` in [first, end), splitting a range whose answer hit the cap."""
        cap = self.settings.relay_cap
        values = [str(gseq) for gseq in range(first, end)]
        filter_ = self._filter(self.kinds.entry, **{"#o": values}, limit=cap)
        events = await self.session.query(filter_)
        if len(events) < cap or end - first == 1:
            return events
        middle = (first + end) // 2
        return [*await self._scan(first, middle), *await self._scan(middle, end)]

    async def read(self, report: RelayReport) -> None:
        """Read the whole log; read again while rotation entries hand the log to new keys."""
        while True:
            self.entries, self.checkpoints, self.deletions = [], [], []
            await self._read_once(report)
            handed_to = _rotated_to(self.entries, self.keys)
            if not handed_to:
                return
            self.keys.extend(handed_to)

    async def _read_once(self, report: RelayReport) -> None:
        query, cap = self.session.query, self.settings.relay_cap
        self.checkpoints = await query(
            self._filter(self.kinds.checkpoint, **{"#d": [CHECKPOINT_D]})
        )
        newest = await query(self._filter(self.kinds.entry, limit=cap))
        self.deletions = await query(self._filter(5, limit=cap))
        self.entries.extend(newest)
        hints = [
            _highest(newest, self.keys, "o"),
            _highest(self.checkpoints, self.keys, "gseq"),
        ]
        head = max((hint for hint in hints if hint is not None), default=-1)

        first, empty_run, size = 0, 0, self.settings.batch_size
        while True:
            batch = await self._scan(first, first + size)
            self.entries.extend(batch)
            found = _highest(batch, self.keys, "o")
            if found is None:
                empty_run += 1
            else:
                head, empty_run = max(head, found), 0
            first += size
            if not batch and first > head:
                break
            if empty_run >= self.settings.max_empty_batches:
                report.notices.append(
                    f"gave up at gseq {first} after {empty_run} empty batches (head {head})"
                )
                break


async def _read_relay(
    url: str, operator: str, kinds: AuditKinds, settings: FetchSettings
) -> tuple[RelayReport, _RelayReader | None]:
    report = RelayReport(url)
    reader: _RelayReader | None = None
    try:
        async with asyncio.timeout(settings.timeout_s):
            ws = await connect(url, open_timeout=None, max_size=2**24, ping_interval=None)
        async with ws:
            reader = _RelayReader(
                _Session(ws, report, settings.timeout_s), operator, kinds, settings
            )
            await reader.read(report)
        report.ok = True
    except TimeoutError:
        report.error = f"timed out after {settings.timeout_s:g} s"
    except RelayRefused as exc:
        report.error = f"relay closed the subscription: {exc}"
    except (OSError, WebSocketException, ValueError) as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    if reader is not None:
        report.entries = len({event.get("id") for event in reader.entries})
        report.highest_gseq = _highest(reader.entries, reader.keys, "o")
    return report, reader


def _union(groups: Iterable[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every distinct event once: the same id with another body is kept too (it fails its
    id check in the audit instead of shadowing the genuine copy)."""
    seen: dict[str, dict[str, Any]] = {}
    for events in groups:
        for event in events:
            seen.setdefault(json.dumps(event, sort_keys=True), event)
    return list(seen.values())


async def fetch_log(
    relays: Sequence[str],
    operator: str,
    *,
    kinds: AuditKinds | None = None,
    settings: FetchSettings | None = None,
) -> FetchResult:
    """The operator's log entries, checkpoints and deletion requests from every relay."""
    kinds, settings = kinds or AuditKinds(), settings or FetchSettings()
    results = await asyncio.gather(*(_read_relay(url, operator, kinds, settings) for url in relays))
    readers = [reader for _, reader in results if reader is not None]
    return FetchResult(
        entries=_union(reader.entries for reader in readers),
        checkpoints=_union(reader.checkpoints for reader in readers),
        deletions=_union(reader.deletions for reader in readers),
        relays=[report for report, _ in results],
    )
