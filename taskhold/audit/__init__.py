"""The independent auditor of taskhold's public log (``taskhold audit``).

Written from ``docs/public-log.md`` alone: it must not import the writer (``taskhold.nostr``,
``taskhold.tasks``, ``taskhold.store``) nor ``nostr_sdk``, so a bug there cannot vouch for
itself. Signatures are checked on coincurve, ids computed from NIP-01, relays read over plain
websockets.
"""

from __future__ import annotations

from .checks import AuditResult, Summary, audit_log
from .entry import AuditKinds
from .fetch import FetchResult, FetchSettings, RelayReport, fetch_log
from .findings import Finding, FindingKind, Location
from .nip01 import Verdict, verify_event
from .nip19 import operator_hex

__all__ = [
    "AuditKinds",
    "AuditResult",
    "FetchResult",
    "FetchSettings",
    "Finding",
    "FindingKind",
    "Location",
    "RelayReport",
    "Summary",
    "Verdict",
    "audit_log",
    "fetch_log",
    "operator_hex",
    "verify_event",
]
