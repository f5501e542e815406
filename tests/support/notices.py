"""Reading the NIP-17 notifications a stack queued: gift wraps in its outbox, opened by key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from support.stacks import Stack
from taskhold.nostr import NostrKeys
from taskhold.nostr.private_messages import PrivateMessage
from taskhold.store.models import OutboxRow


async def gift_wraps(stack: Stack) -> list[dict[str, Any]]:
    """Every gift wrap the stack queued, oldest first."""
    stmt = (
        select(OutboxRow.raw)
        .where(OutboxRow.kind == stack.settings.kind_gift_wrap)
        .order_by(OutboxRow.created_at, OutboxRow.event_id)
    )
    async with stack.services.store.transaction() as tx:
        return [dict(raw) for raw in (await tx.session.execute(stmt)).scalars()]


def opened_by(keys: NostrKeys, wraps: list[dict[str, Any]]) -> list[PrivateMessage]:
    """The messages among ``wraps`` that ``keys`` can open."""
    found = []
    for wrap in wraps:
        try:
            found.append(keys.open_private_message(wrap))
        except ValueError:
            continue
    return found


class Inbox:
    """Who was told what so far; :meth:`new` gives what arrived since the last call."""

    def __init__(self, stack: Stack, people: dict[str, NostrKeys]) -> None:
        self.stack = stack
        self.people = people
        self._seen: set[str] = set()

    async def new(self) -> set[tuple[str, str, str | None]]:
        """``(person, action, task)`` for each notification queued since the last call."""
        fresh = [wrap for wrap in await gift_wraps(self.stack) if wrap["id"] not in self._seen]
        self._seen.update(wrap["id"] for wrap in fresh)
        told = set()
        for wrap in fresh:
            readers = [name for name, keys in self.people.items() if opened_by(keys, [wrap])]
            assert len(readers) == 1, f"a notification opened by {readers}, not by one person"
            message = opened_by(self.people[readers[0]], [wrap])[0]
            told.add((readers[0], message.tag("action") or "", message.tag("task")))
        return told
