"""Publishing reputation assertions: NIP-85 kind 30382, ``d`` = subject, reputation key.

The assertion is signed by a key of its own (``keys/reputation.key``, allowed to sign kind 30382
only; NIP-85: "different service keys for distinct algorithms"), queued in the outbox in the same
transaction that records it as the subject's newest, and only when the subject's score or the
score version changed. Its ``created_at`` grows strictly per subject, so relays keep the newest;
an older assertion still waiting in the outbox is marked done instead of being sent after it.
Tags: see ``score.assertion_tags``; content is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskhold.keys.signer import EventSigner
from taskhold.publiclog.writer import sign_and_queue
from taskhold.store.models import OutboxRow, ReputationAssertionRow

from .score import ScoreCard, assertion_tags

__all__ = ["AssertionPublisher", "assertion_view"]


class AssertionPublisher:
    def __init__(
        self,
        signer: EventSigner,
        *,
        kind: int,
        operator_pubkey: str,
        clock: Callable[[], float],
    ) -> None:
        self.signer = signer
        self.kind = kind
        self.operator_pubkey = operator_pubkey
        self._clock = clock

    @property
    def pubkey(self) -> str:
        return self.signer.get_public_key()

    async def publish_changed(
        self, session: AsyncSession, cards: Iterable[ScoreCard]
    ) -> list[dict[str, Any]]:
        """Sign and queue an assertion for each card whose score differs from the published
        one; a subject never published whose score is 0 needs none. Returns what was queued."""
        queued = []
        now = int(self._clock())
        cards = list(cards)
        published = await self._rows(session, [card.subject for card in cards])
        for card in cards:
            row = published.get(card.subject)
            if row is None and card.score == 0:
                continue
            if row is not None and row.score == card.score and row.version == card.version:
                continue
            created_at = now if row is None else max(now, row.created_at + 1)
            signed = sign_and_queue(
                session,
                self.signer,
                self.kind,
                "",
                assertion_tags(card, self.operator_pubkey),
                created_at,
                queued_at=now,
            )
            if row is None:
                row = ReputationAssertionRow(subject=card.subject)
                session.add(row)
            else:
                # mark the replaced row before its successor's row is written: a subject's
                # assertions queued in one second are then stored oldest first
                with session.no_autoflush:
                    await session.execute(
                        update(OutboxRow)
                        .where(OutboxRow.event_id == row.event_id, OutboxRow.done.is_(False))
                        .values(
                            done=True, last_error=f"not sent: replaced by assertion {signed['id']}"
                        )
                    )
            row.event_id, row.version, row.score = signed["id"], card.version, card.score
            row.gseq_to, row.rseq_to, row.created_at = card.gseq_to, card.rseq_to, created_at
            queued.append(signed)
        return queued

    @staticmethod
    async def _rows(
        session: AsyncSession, subjects: list[str]
    ) -> dict[str, ReputationAssertionRow]:
        rows: dict[str, ReputationAssertionRow] = {}
        for start in range(0, len(subjects), 500):
            stmt = select(ReputationAssertionRow).where(
                ReputationAssertionRow.subject.in_(subjects[start : start + 500])
            )
            rows.update((row.subject, row) for row in (await session.execute(stmt)).scalars())
        return rows


def assertion_view(row: ReputationAssertionRow) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "version": row.version,
        "score": row.score,
        "gseq_to": row.gseq_to,
        "rseq_to": row.rseq_to,
        "created_at": row.created_at,
    }
