"""Checking published reputation scores (kind 30382) against the log they claim to cover.

The score is a published, versioned function (``taskhold.reputation.score``, standard library
only), so the auditor recomputes it from the entries it fetched and verified itself, with the
review records (kind 3914) the operator signed. Signatures are checked here with coincurve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from taskhold.reputation.score import recompute

from .fetch import FetchSettings, RelayRefused, RelayReport, _Session, _union
from .findings import Finding, FindingKind, Location
from .nip01 import Verdict, verify_event

__all__ = ["fetch_reputation", "score_findings"]


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
                events.extend(await session.query(filter_))
    except (TimeoutError, RelayRefused, OSError, WebSocketException, ValueError):
        return []
    return events


async def fetch_reputation(
    relays: Sequence[str],
    operator: str,
    reputation: str,
    *,
    assertion_kind: int = 30382,
    record_kind: int = 3914,
    settings: FetchSettings | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every score assertion by ``reputation`` and every review record by ``operator``."""
    settings = settings or FetchSettings()
    assertions_filter = {"authors": [reputation], "kinds": [assertion_kind], "limit": 500}
    records_filter = {"authors": [operator], "kinds": [record_kind], "limit": 500}
    results = await asyncio.gather(
        *(_read(url, [assertions_filter, records_filter], settings) for url in relays)
    )
    events = _union(results)
    assertions = [e for e in events if e.get("kind") == assertion_kind]
    records = [e for e in events if e.get("kind") == record_kind]
    return assertions, records


def score_findings(
    entries: Sequence[dict[str, Any]],
    assertions: Sequence[dict[str, Any]],
    records: Sequence[dict[str, Any]],
    *,
    operator: str,
    reputation: str,
) -> tuple[int, list[Finding]]:
    """How many assertions were checked, and a finding for each one the log does not give."""
    genuine = [e for e in entries if verify_event(e) is Verdict.OK and e.get("pubkey") == operator]
    trusted_records = [
        r for r in records if verify_event(r) is Verdict.OK and r.get("pubkey") == operator
    ]
    report = recompute(
        genuine,
        assertions,
        review_records=trusted_records,
        operator_pubkey=operator,
        reputation_pubkey=reputation,
        verify=lambda event: verify_event(event) is Verdict.OK,
    )
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
