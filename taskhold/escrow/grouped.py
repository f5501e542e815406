"""Group commit: the system commands of several tasks recorded in one transaction.

When many releases are due at once, their payment jobs finish close together, and each ended
in a transaction of its own for its task's log entry. Here whoever comes first leads: it waits
for the database, then decides and records every command queued by then in one transaction;
the others find theirs done. Only what is already true on the node is grouped (a hold settled
after its own payout landed), so a crash before the commit leaves each task where a crash right
after its own settle would: its next pass finds the payout paid and the hold settled, and
records it. A group that fails (a conflict on one task) is retried one task at a time, each in
its own transaction, so one task's trouble never holds another's back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from taskhold.settings import Settings
from taskhold.store import Store, Tx
from taskhold.tasks import SYSTEM_ACTOR, Task, decide
from taskhold.tasks.commands import Command
from taskhold.tasks.events import Event

__all__ = ["CommitGroup", "Make", "record_system"]

log = structlog.get_logger("taskhold.escrow")

Make = Callable[[Task, int], Command | None]
"""Sees the locked task and the time; returns the command, or None to do nothing."""


class _Context(Protocol):
    store: Store
    settings: Settings

    def now(self) -> int: ...


async def record_system(
    ctx: _Context, tx: Tx, task_id: str, make: Make
) -> tuple[Task | None, list[Event]]:
    """Decide and record one system command on the freshest task inside ``tx``. Replays are
    harmless: the machine decides a repeated system command to no events."""
    task = await tx.load_task(task_id, for_update=True)
    if task is None:
        return None, []
    command = make(task, ctx.now())
    if command is None:
        return task, []
    events = decide(task, command, frozenset(ctx.settings.arbiters))
    return await tx.append(task, events), events


def log_transitions(task_id: str, task: Task | None, events: list[Event]) -> None:
    for event in events:
        assert task is not None
        log.info(
            "transition",
            task_id=task_id,
            event_type=type(event).__name__,
            state=task.state.value,
            actor=SYSTEM_ACTOR,
        )


@dataclass
class _Queued:
    task_id: str
    make: Make
    done: asyncio.Future[Task | None]


@dataclass
class CommitGroup:
    """Grouped :func:`~.context.apply_system`; one per engine context."""

    max_group: int = 64
    _queue: list[_Queued] = field(default_factory=list)
    _lead: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def apply(self, ctx: _Context, task_id: str, make: Make) -> Task | None:
        """Decide and record one system command on the freshest task, in one transaction with
        whatever others are queued by then; the task as recorded."""
        mine = _Queued(task_id, make, asyncio.get_running_loop().create_future())
        self._queue.append(mine)
        async with self._lead:
            if not mine.done.done():
                await self._commit(ctx)
        return mine.done.result()

    async def _commit(self, ctx: _Context) -> None:
        batch: list[_Queued] = []
        decided: list[tuple[_Queued, Task | None, list[Event]]] = []
        try:
            async with ctx.store.transaction() as tx:
                batch, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
                for queued in sorted(batch, key=lambda q: q.task_id):  # one lock order
                    task, events = await record_system(ctx, tx, queued.task_id, queued.make)
                    decided.append((queued, task, events))
        except asyncio.CancelledError:
            self._queue[:0] = batch  # the next leader records them (a replay decides nothing)
            raise
        except Exception as exc:
            log.warning("grouped_commit_failed", tasks=len(batch), error=type(exc).__name__)
            for queued in batch:
                await self._alone(ctx, queued)
            return
        for queued, task, events in decided:
            log_transitions(queued.task_id, task, events)
            queued.done.set_result(task)

    @staticmethod
    async def _alone(ctx: _Context, queued: _Queued) -> None:
        try:
            async with ctx.store.transaction() as tx:
                task, events = await record_system(ctx, tx, queued.task_id, queued.make)
        except Exception as exc:
            queued.done.set_exception(exc)
            return
        log_transitions(queued.task_id, task, events)
        queued.done.set_result(task)
