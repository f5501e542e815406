"""Tests that drive the escrow engine by hand must not also run its background watchers.

A test calls ``engine.reconcile()`` / ``run_once()`` at the moments it chooses and then asserts
on the state. An invoice watcher started by a write (``fund``, ``deposit``) or by a reconcile
pass would observe the node on its own schedule and race those passes, so what a test sees
would depend on timing. The hand-driven engine starts no watcher: every node change reaches
the database through the reconcile pass the test runs.
"""

from __future__ import annotations

from taskhold.escrow import EscrowEngine
from taskhold.services import Services
from taskhold.tasks import Task

__all__ = ["HandDrivenEngine", "drive_by_hand"]


class HandDrivenEngine(EscrowEngine):
    """An engine with no background work: only the passes the test runs itself."""

    def watch(self, task_id: str, payment_hash_hex: str) -> None:
        return None

    def watch_deposits(self, task: Task) -> None:
        return None

    async def start(self) -> None:
        raise AssertionError("a hand-driven engine is never started")


def drive_by_hand(services: Services) -> None:
    """Swap the services' engine for a hand-driven one (before any request is served)."""
    engine = HandDrivenEngine(services.engine.ctx)
    services.engine = engine
    services.writes.engine = engine
