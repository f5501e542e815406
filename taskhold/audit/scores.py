"""Checking published reputation scores (kind 30382) against the log they claim to cover.

The score is a published, versioned function (``taskhold.reputation.score``, standard library
only), so the auditor recomputes it from the entries it fetched and verified itself, with the
review records (kind 3914) the operator signed. Signatures are checked here with coincurve.
Each assertion is recomputed by the rules of the score version its ``v`` tag names
(``SCORE_VERSIONS``): one published before a version bump still verifies by its own rules, and
one naming a version nobody defined is a mismatch.

The operator key can rotate, so receipts (kind 3913) and records are fetched from every key the
verified log was handed to. Which key may sign what is the score module's rule (it follows the
chain from the key the audit starts with): a record by the key of its task's final entry or a
later one, a receipt by the key of its task's final entry. Receipts are also checked on their
own: one the log does not back is a ``bad_receipt`` finding.

Relays cap each answer (about 500 events) and these kinds carry no indexed sequence number, so
each is read by ``created_at`` windows, halved while an answer comes back full.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, NamedTuple

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from taskhold.reputation.score import SequenceConflict, check_receipts, recompute

from .fetch import FetchSettings, RelayRefused, RelayReport, _Session, _union
from .findings import Finding, FindingKind, Location
from .nip01 import Verdict, verify_event

__all__ = ["ReputationEvents", "fetch_reputation", "receipt_findings", "score_findings"]

LATEST = 2**32 - 1
"""The upper bound of the first ``created_at`` window (2106)."""


class ReputationEvents(NamedTuple):
    assertions: list[dict[str, Any]]
    records: list[dict[str, Any]]
    receipts: list[dict[str, Any]]


async def _every(
    session: _Session, filter_: dict[str, Any], cap: int, since: int = 0, until: int = LATEST
) -> list[dict[str, Any]]:
    """Every event of ``filter_`` in ``[since, until]``, halving a window whose answer may have
    been cut at the cap (one second that holds more than the cap is kept as the relay cut it)."""
    events = await session.query({**filter_, "since": since, "until": until, "limit": cap})
    if len(events) < cap or since >= until:
        return events
    middle = (since + until) // 2
    return [
        *await _every(session, filter_, cap, since, middle),
        *await _every(session, filter_, cap, middle + 1, until),
    ]


async def _read(
    url: str, filters: list[dict[str, Any]], settings: FetchSettings
) -> list[dict[str, Any]]:
    report = RelayReport(url)
    events: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(settings.timeout_s):
            ws = await connect(url, open_timeout=None, max_size=2**24, ping_interval=None)
        async with ws:
            session = _Session(ws, report, settings.timeout_s)
            for filter_ in filters:
                events.extend(await _every(session, filter_, settings.relay_cap))
    except (TimeoutError, RelayRefused, OSError, WebSocketException, ValueError):
        return []
    return events


async def fetch_reputation(
    relays: Sequence[str],
    operator: str | Sequence[str],
    reputation: str,
    *,
    assertion_kind: int = 30382,
    record_kind: int = 3914,
    receipt_kind: int = 3913,
    settings: FetchSettings | None = None,
) -> ReputationEvents:
    """Every score assertion by ``reputation``, and every review record and receipt signed by
    ``operator`` (one key, or every key of the log's chain: ``AuditResult.operator_keys``)."""
    settings = settings or FetchSettings()
    keys = [operator] if isinstance(operator, str) else list(operator)
    filters = [
        {"authors": [reputation], "kinds": [assertion_kind]},
        {"authors": keys, "kinds": [record_kind]},
        {"authors": keys, "kinds": [receipt_kind]},
    ]
    results = await asyncio.gather(*(_read(url, filters, settings) for url in relays))
    events = _union(results)
    return ReputationEvents(
        assertions=[e for e in events if e.get("kind") == assertion_kind],
        records=[e for e in events if e.get("kind") == record_kind],
        receipts=[e for e in events if e.get("kind") == receipt_kind],
    )


def _verified(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if verify_event(e) is Verdict.OK]


def score_findings(
    entries: Sequence[dict[str, Any]],
    assertions: Sequence[dict[str, Any]],
    records: Sequence[dict[str, Any]],
    *,
    operator: str,
    reputation: str,
) -> tuple[int, list[Finding]]:
    """How many assertions were checked, and a finding for each one the log does not give.

    ``operator`` is the key the log starts with; entries and records by other keys count only
    as far as the chain of ``KeyRotated`` entries from it makes them the operator's."""
    try:
        report = recompute(
            _verified(entries),
            assertions,
            review_records=_verified(records),
            operator_pubkey=operator,
            reputation_pubkey=reputation,
            verify=lambda event: verify_event(event) is Verdict.OK,
        )
    except SequenceConflict as exc:
        detail = f"scores not recomputed: {exc} (see the log's equivocation findings)"
        return 0, [Finding(FindingKind.SCORE_MISMATCH, Location(), detail)]
    findings = [
        Finding(
            FindingKind.SCORE_MISMATCH,
            Location(event_id=m.event_id),
            f"score for {m.subject[:16]}…: {m.field} published {m.published!r},"
            f" the log gives {m.recomputed!r}",
            (m.event_id,),
        )
        for m in report.mismatches
    ]
    return report.checked, findings


def receipt_findings(
    entries: Sequence[dict[str, Any]], receipts: Sequence[dict[str, Any]], *, operator: str
) -> list[Finding]:
    """A finding for each operator-signed receipt the log does not back (see module doc)."""
    try:
        problems = check_receipts(
            _verified(entries),
            receipts,
            operator_pubkey=operator,
            verify=lambda event: verify_event(event) is Verdict.OK,
        )
    except SequenceConflict:
        return []  # the equivocation is the log's finding; receipts cannot be placed
    return [
        Finding(
            FindingKind.BAD_RECEIPT,
            Location(task=p.task_id or None, event_id=p.event_id),
            f"receipt {p.event_id[:16]}…: {p.reason}",
            (p.event_id,),
        )
        for p in problems
    ]
