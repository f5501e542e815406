"""``owed_by_relay``: per configured relay, the outbox rows it has not acked (the metrics'
outbox lag). A row done, or acked by that relay, is not owed to it."""

from __future__ import annotations

from support.stacks import Stack

from taskhold.publiclog.publisher import RelayLag, owed_by_relay
from taskhold.store.models import OutboxRow

A, B, C = "ws://a.test", "ws://b.test", "ws://c.test"


def _row(event_id: str, created_at: int, acked: list[str], *, done: bool = False) -> OutboxRow:
    return OutboxRow(
        event_id=event_id * 64,
        kind=3910,
        raw={},
        acked_relays=acked,
        done=done,
        attempts=1,
        next_attempt_at=created_at,
        last_error=None,
        created_at=created_at,
    )


async def test_each_relay_is_owed_what_it_has_not_acked(stack: Stack) -> None:
    async with stack.services.store.transaction() as tx:
        tx.session.add_all(
            [
                _row("1", 100, [A]),
                _row("2", 200, []),
                _row("3", 50, [], done=True),  # done: owed to nobody, however old
                _row("4", 300, [B]),
            ]
        )
    async with stack.services.store.transaction() as tx:
        owed = await owed_by_relay(tx.session, [A, B, C])

    assert owed == {
        A: RelayLag(events=2, oldest_created_at=200),
        B: RelayLag(events=2, oldest_created_at=100),
        C: RelayLag(events=3, oldest_created_at=100),
    }


async def test_no_relay_configured_is_no_figure(stack: Stack) -> None:
    async with stack.services.store.transaction() as tx:
        assert await owed_by_relay(tx.session, []) == {}
