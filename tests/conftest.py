"""Shared fixtures: a taskhold stack on the Lightning simulator, on SQLite and on PostgreSQL.

Every database-backed test runs once per database (see ``support/stacks.py`` for how the
PostgreSQL databases are made). What tests import is in ``tests/support/``, never here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.stacks import (
    PG_ADMIN_URL,
    REQUIRE_PG,
    OpenStack,
    Stack,
    channel_world,
    close_stack,
    new_database,
    open_stack,
    stack_settings,
)

from taskhold.nostr import NostrKeys
from taskhold.nostr.embedded import EmbeddedRelay


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``scripts/test -n 2 --dist loadgroup``) every devnet test runs in one
    worker, first and in collection order: they share that process's regtest network (and the
    pool devnet is stopped after its last test), while the other worker takes the rest. Without
    xdist the order stays as collected. (A worker's own ``dist`` option reads "no"; xdist tells
    it of loadgroup as ``loadgroup``.)"""
    if not getattr(config.option, "loadgroup", False) and config.getoption("dist", "no") == "no":
        return
    for item in items:
        if item.get_closest_marker("devnet") is not None:
            item.add_marker(pytest.mark.xdist_group("devnet"))
    items.sort(key=lambda item: item.get_closest_marker("devnet") is None)


def _database_params() -> list[Any]:
    params: list[Any] = [pytest.param("sqlite", id="sqlite")]
    if PG_ADMIN_URL or REQUIRE_PG:
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


@pytest.fixture(params=_database_params())
def database_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(database_kind: str, tmp_path: Path) -> AsyncIterator[str]:
    async with new_database(database_kind, tmp_path / "db") as url:
        yield url


@pytest.fixture
async def stack(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    opened = await open_stack(stack_settings(tmp_path, database_url))
    try:
        yield opened
    finally:
        await close_stack(opened)


@pytest.fixture
async def open_custom(tmp_path: Path, database_url: str) -> AsyncIterator[Any]:
    """Open stacks with settings of the test's choosing (``await open_custom(name=value)``);
    every one opened is closed at the end."""
    opened: list[Stack] = []

    async def open_with(**overrides: Any) -> Stack:
        stack = await open_stack(stack_settings(tmp_path, database_url, **overrides))
        opened.append(stack)
        return stack

    yield open_with
    for stack in opened:
        await close_stack(stack)


@pytest.fixture
def keys() -> Iterator[dict[str, NostrKeys]]:
    yield {name: NostrKeys.generate() for name in ("employer", "worker", "other", "arbiter")}


@pytest.fixture
async def stack_with(tmp_path: Path, database_url: str) -> AsyncIterator[OpenStack]:
    """Opens stacks whose escrow node has the given channels (``channel_world``) and settings."""
    opened: list[Stack] = []

    async def open_one(
        *,
        escrow_msat: int = 50_000_000_000,
        inbound_msat: int | None = None,
        htlc_slots: int | None = None,
        **overrides: Any,
    ) -> Stack:
        world = channel_world(
            escrow_msat=escrow_msat, inbound_msat=inbound_msat, htlc_slots=htlc_slots
        )
        settings = stack_settings(tmp_path / str(len(opened)), database_url, **overrides)
        stack = await open_stack(settings, world)
        opened.append(stack)
        return stack

    yield open_one
    for stack in opened:
        await close_stack(stack)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[EmbeddedRelay]:
    """A real relay (nostr-sdk's embedded one) on loopback, stopped after the test."""
    embedded = EmbeddedRelay(tmp_path / "relay-data")
    await embedded.start()
    try:
        yield embedded
    finally:
        await embedded.stop()
