"""Signed checkpoints of the audit log's head, kept outside the database.

Whoever controls the database as superuser can rewrite the whole chain consistently; a head
``(seq, hash)`` signed by the operator and published (kind 30078, ``d`` = ``taskhold-audit-head``)
can't be rewritten with it. The hash at ``seq`` commits to every row before it, so checking the
newest checkpoint checks everything up to there.

Publishing is the public log's job: ``checkpoint_payload(head)`` gives the content and tags to
sign; :func:`verify_checkpoints` checks published ones against the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from taskhold.nostr import verify_event
from taskhold.store.models import AuditRow

from .chain import HASH_VERSION, AuditHead, Executor, read_head

__all__ = [
    "CHECKPOINT_D",
    "KEY_HISTORY_ACTIONS",
    "CheckpointResult",
    "checkpoint_payload",
    "operator_pubkeys",
    "verify_checkpoints",
]

CHECKPOINT_D = "taskhold-audit-head"
KEY_HISTORY_ACTIONS = ("config.start", "keys.init", "keys.operator_created", "keys.rotate")
"""Audit actions whose details name operator public keys (``*pubkey`` fields)."""


def checkpoint_payload(head: AuditHead) -> tuple[str, list[list[str]]]:
    """Content and tags of the checkpoint event for ``head``; the caller signs and publishes."""
    content = json.dumps(
        {"v": HASH_VERSION, "seq": head.seq, "hash": head.hash, "at": head.at},
        sort_keys=True,
        separators=(",", ":"),
    )
    tags = [
        ["d", CHECKPOINT_D],
        ["seq", str(head.seq)],
        ["hash", head.hash],
        ["alt", "taskhold audit log checkpoint"],
    ]
    return content, tags


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    event_id: str
    seq: int | None
    ok: bool
    reason: str


async def operator_pubkeys(executor: Executor) -> set[str]:
    """Every operator key the audit log has recorded: created at init, rotated to and from."""
    rows = await executor.execute(
        select(AuditRow.details).where(AuditRow.action.in_(KEY_HISTORY_ACTIONS))
    )
    keys: set[str] = set()
    for (details,) in rows:
        if isinstance(details, str):
            details = json.loads(details)
        keys.update(v for k, v in details.items() if k.endswith("pubkey") and isinstance(v, str))
    return keys


def _ours(event: object, kind: int) -> bool:
    if not isinstance(event, dict) or event.get("kind") != kind:
        return False
    return ["d", CHECKPOINT_D] in [list(tag[:2]) for tag in event.get("tags", [])]


async def verify_checkpoints(
    executor: Executor,
    events: Iterable[object],
    *,
    trusted_pubkeys: set[str],
    kind: int = 30078,
) -> list[CheckpointResult]:
    """Check each audit checkpoint among ``events``: signature, signer, and that the row at its
    ``seq`` still has its ``hash``. Events of other kinds or ``d`` tags are skipped."""
    head = await read_head(executor)
    results = []
    for event in events:
        if not _ours(event, kind):
            continue
        assert isinstance(event, dict)
        results.append(await _check(executor, event, head, trusted_pubkeys))
    return results


async def _check(
    executor: Executor, event: dict[str, Any], head: AuditHead | None, trusted: set[str]
) -> CheckpointResult:
    event_id = str(event.get("id", ""))
    if not verify_event(event):
        return CheckpointResult(event_id, None, False, "signature or id does not verify")
    if event["pubkey"] not in trusted:
        return CheckpointResult(event_id, None, False, "signed by a key that is no operator key")
    try:
        payload = json.loads(event["content"])
        seq, digest = int(payload["seq"]), str(payload["hash"])
    except (ValueError, KeyError, TypeError):
        return CheckpointResult(event_id, None, False, "content is not a checkpoint")
    if head is None or seq > head.seq:
        return CheckpointResult(
            event_id, seq, False, "checkpoint is past the log's head: rows gone"
        )
    stored = (
        await executor.execute(select(AuditRow.hash).where(AuditRow.seq == seq))
    ).scalar_one_or_none()
    if stored != digest:
        return CheckpointResult(event_id, seq, False, "the row at seq differs from the checkpoint")
    return CheckpointResult(event_id, seq, True, "matches")
