"""Pause and resume intake, and ask the engines for a pass; each in one transaction with its
journal entry, so a switch never changes unrecorded.

A pause or resume that finds the switch where it is already changes nothing and is journaled
with ``changed: false``: the operator's intent is on record either way.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from taskhold.journal.chain import AuditLog
from taskhold.store import Store, WriteConflict
from taskhold.store.controls import (
    INTAKE_PAUSED,
    RECONCILE_ASKED,
    RECONCILE_DONE,
    Control,
    bump_control,
    read_control,
    set_control,
)

__all__ = ["IntakeChange", "ask_reconcile", "intake_status", "set_intake", "wait_reconciled"]


@dataclass(frozen=True, slots=True)
class IntakeChange:
    paused: bool
    changed: bool
    """False: intake already was as asked (the journal says so too)."""


ATTEMPTS = 3
"""Two operators writing a switch's first row at once: the loser reads the winner's and goes on."""


async def set_intake(
    store: Store, *, paused: bool, actor: str, reason: str | None = None, now: int | None = None
) -> IntakeChange:
    """Pause (``paused=True``) or resume intake for every replica on this database."""
    for attempt in range(ATTEMPTS):
        try:
            return await _set_intake(store, paused, actor, reason, now)
        except WriteConflict:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def _set_intake(
    store: Store, paused: bool, actor: str, reason: str | None, now: int | None
) -> IntakeChange:
    at = int(time.time()) if now is None else now
    async with store.transaction() as tx:
        before = await set_control(tx, INTAKE_PAUSED, int(paused), actor=actor, now=at)
        was = before is not None and bool(before.value)
        details: dict[str, Any] = {"before": was, "after": paused, "changed": was != paused}
        if reason:
            details["reason"] = reason
        action = "admin.pause_intake" if paused else "admin.resume_intake"
        await AuditLog().append(tx, actor, action, "intake", details)
    return IntakeChange(paused=paused, changed=was != paused)


async def intake_status(store: Store) -> Control | None:
    """The intake switch as it stands (None: never set, intake open)."""
    async with store.transaction() as tx:
        return await read_control(tx, INTAKE_PAUSED)


async def ask_reconcile(store: Store, *, actor: str, now: int | None = None) -> int:
    """Ask every running engine for one full pass (each picks the ask up at its next tick);
    returns the ask's number, which :func:`wait_reconciled` waits for."""
    at = int(time.time()) if now is None else now
    for attempt in range(ATTEMPTS):
        try:
            async with store.transaction() as tx:
                ask = await bump_control(tx, RECONCILE_ASKED, actor=actor, now=at)
                await AuditLog().append(tx, actor, "admin.reconcile", "engine", {"ask": ask})
            return ask
        except WriteConflict:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def wait_reconciled(
    store: Store, ask: int, *, timeout_s: float, poll_s: float = 0.25
) -> bool:
    """True once an engine finished a pass for ``ask`` (or a later one) within ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        async with store.transaction() as tx:
            done = await read_control(tx, RECONCILE_DONE)
        if done is not None and done.value >= ask:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(poll_s)
