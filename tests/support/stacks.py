"""A taskhold stack on the Lightning simulator, on SQLite or PostgreSQL, reached over HTTP
in-process; and fresh databases of either kind. The fixtures over these are in ``conftest.py``.

PostgreSQL runs when ``TASKHOLD_TEST_PG_URL`` names a server (an admin URL; each test gets a
fresh database that is dropped afterwards). ``scripts/test`` sets it and sets
``TASKHOLD_REQUIRE_PG=1`` so a missing server fails the run instead of quietly testing SQLite
alone.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from support.hand_driven import drive_by_hand
from taskhold.api.application import create_api
from taskhold.api.info import LIVE_MEMBERS
from taskhold.client import TaskholdClient
from taskhold.escrow import EscrowEngine
from taskhold.lightning.base import LightningBackend
from taskhold.lightning.sim import SimNode
from taskhold.lightning.sim_network import SimNetwork
from taskhold.lightning.simworld import SimWorld
from taskhold.nostr import NostrKeys
from taskhold.server import free_port, running_server
from taskhold.services import Services, build_services
from taskhold.settings import Settings

PG_ADMIN_URL = os.environ.get("TASKHOLD_TEST_PG_URL")
REQUIRE_PG = os.environ.get("TASKHOLD_REQUIRE_PG") == "1"


@contextlib.asynccontextmanager
async def new_database(kind: str, directory: Path) -> AsyncIterator[str]:
    """A fresh, empty database of ``kind``; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        yield f"sqlite+aiosqlite:///{directory / f'taskhold-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    if not PG_ADMIN_URL:
        pytest.fail("TASKHOLD_REQUIRE_PG=1 but TASKHOLD_TEST_PG_URL is not set")
    name = f"taskhold_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@dataclass
class Stack:
    """taskhold on the simulator, reached over HTTP in-process (ASGI), engine driven by hand."""

    services: Services
    world: SimWorld
    http: httpx.AsyncClient
    settings: Settings
    faults: dict[str, BaseException] = field(default_factory=dict)

    def client(self, keys: NostrKeys | None = None) -> TaskholdClient:
        return TaskholdClient("http://taskhold.test", keys or NostrKeys.generate(), http=self.http)

    async def settle_engine(self, passes: int = 3) -> None:
        """Let the engine notice node changes and finish whatever is due."""
        for _ in range(passes):
            await self.services.engine.reconcile()
            await self.services.engine.drain()

    async def run_pass(self) -> None:
        """One engine pass, then the payments it started (a pass itself never waits for them)."""
        await self.services.engine.run_once()
        await self.services.engine.drain()


def channel_world(
    *,
    escrow_msat: int = 50_000_000_000,
    inbound_msat: int | None = None,
    htlc_slots: int | None = None,
) -> SimWorld:
    """A simulator world whose escrow node has this balance (its outbound liquidity) and, when
    given, this much inbound room and this many incoming HTLC slots."""
    network = SimNetwork(hold_expiry_delta=12)
    world = SimWorld(
        network=network,
        escrow=SimNode(network, "escrow", balance_msat=escrow_msat),
        employer=SimNode(network, "employer", balance_msat=50_000_000_000),
        worker=SimNode(network, "worker", balance_msat=0),
    )
    network.set_channels(world.escrow, inbound_msat=inbound_msat, htlc_slots=htlc_slots)
    return world


def stack_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "engine_tick_s": 0.05,
        "default_review_window_s": 600,
        "default_dispute_window_s": 600,
        "payout_timeout_s": 5,
    }
    values.update(overrides)
    return Settings(**values)


async def open_stack(
    settings: Settings,
    world: SimWorld | None = None,
    *,
    hand_driven: bool = True,
    lightning: LightningBackend | None = None,
) -> Stack:
    """A stack on the simulator. ``hand_driven``: the test runs every engine pass itself and no
    invoice follower runs in the background; tests of the follower itself pass False.
    ``lightning`` replaces the world's escrow node as taskhold's backend (a pool of them)."""
    world = world or SimWorld.create(hold_expiry_delta=settings.hold_expiry_delta)
    faults: dict[str, BaseException] = {}

    async def fault_hook(point: str) -> None:
        exc = faults.pop(point, None)
        if exc is not None:
            raise exc

    services = await build_services(settings, sim=world, lightning=lightning, fault_hook=fault_hook)
    if hand_driven:
        drive_by_hand(services)
    app = create_api(services, run_engine=False)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://taskhold.test"
    )
    return Stack(services=services, world=world, http=http, settings=settings, faults=faults)


async def close_stack(stack: Stack) -> None:
    await stack.http.aclose()
    await stack.services.close()


def http_from(stack: Stack, address: str) -> httpx.AsyncClient:
    """An in-process client of the stack's API whose requests come from ``address`` (the ASGI
    scope's client, which is what the server judges a client by); close it after use."""
    app = create_api(stack.services, run_engine=False)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://taskhold.test",
    )


def served(stack: Stack) -> contextlib.AbstractAsyncContextManager[str]:
    """A real uvicorn server for the stack; a served app starts its engine, so the test
    stack's hand-driven one is swapped for the ordinary engine first."""
    engine = EscrowEngine(stack.services.engine.ctx)
    stack.services.engine = engine
    stack.services.writes.engine = engine
    return running_server(stack.services, "127.0.0.1", free_port())


def terms_of(info: httpx.Response) -> dict[str, Any]:
    """``GET /v1/info`` without its live figures: exactly the signed info event's content."""
    return {k: v for k, v in info.json().items() if k not in LIVE_MEMBERS}


OpenStack = Callable[..., Awaitable[Stack]]
"""Opens a stack whose escrow node has the given channels (the ``stack_with`` fixture)."""
