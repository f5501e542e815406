"""Relays for tests: PyPI ``nostr-relay`` as a separate process, and steps the relay tests share.

``NostrRelayProcess`` is the second relay implementation the public log is tested against. It
runs under gunicorn in its own process group with its SQLite file in the test's directory, so it
can be stopped and started again on the same port with the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from support.stacks import Stack
from support.task_flows import funded, submitted
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.relays import RelayPool
from taskhold.publiclog.publisher import OutboxPublisher
from taskhold.server import free_port
from taskhold.store.models import LogEntryRow, OutboxRow

NOSTR_RELAY_CONFIG = """\
DEBUG: false
relay_name: taskhold test relay
storage:
  sqlalchemy.url: sqlite+aiosqlite:///{db}
  num_concurrent_reqs: 10
  num_concurrent_adds: 2
  validators:
    - nostr_relay.validators.is_not_too_large
    - nostr_relay.validators.is_signed
    - nostr_relay.validators.is_recent
gunicorn:
  bind: 127.0.0.1:{port}
  workers: 1
  loglevel: warning
  reload: false
# taskhold's entries embed whole signed requests: far above the 4096-character default
max_event_size: 262144
max_limit: 6000
subscription_limit: 32
message_timeout: 1800
logging:
  version: 1
  root: {{level: WARNING}}
"""

_RUN_RELAY = "import sys; from nostr_relay.cli import main; sys.exit(main())"


class NostrRelayProcess:
    """PyPI ``nostr-relay`` (gunicorn + uvicorn, SQLite) on loopback, in its own process group.

    Note it refuses events older than a year or more than an hour in the future (``is_recent``).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.yaml"
        config.write_text(
            NOSTR_RELAY_CONFIG.format(db=self.directory / "relay.sqlite3", port=self.port)
        )
        with (self.directory / "relay.log").open("ab") as output:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _RUN_RELAY, "-c", str(config), "serve"],
                cwd=self.directory,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nostr-relay exited: {self.log_tail()}")
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{self.port}/",
                    headers={"Accept": "application/nostr+json"},
                    timeout=1.0,
                )
                if answer.status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"nostr-relay did not start in {timeout_s} s: {self.log_tail()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)  # gunicorn's master and its worker
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def log_tail(self) -> str:
        path = self.directory / "relay.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


async def run_tasks(stack: Stack, *, paid: int = 1, refunded: int = 1) -> None:
    """Drive tasks through the main paths: to PAID and to REFUNDED."""
    for _ in range(paid):
        employer, worker = stack.client(), stack.client()
        task = await submitted(stack, employer, worker)
        await employer.approve(task["task_id"])
        await stack.settle_engine()
        assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    for _ in range(refunded):
        employer = stack.client()
        task = await funded(stack, employer)
        await employer.cancel(task["task_id"], reason="no longer needed")
        await stack.settle_engine()
        assert (await employer.get_task(task["task_id"]))["state"] == "REFUNDED"


async def log_in_db(stack: Stack) -> list[tuple[int, str]]:
    """``(gseq, event id)`` of every log entry the database holds, in order."""
    stmt = select(LogEntryRow.gseq, LogEntryRow.event_id).order_by(LogEntryRow.gseq)
    async with stack.services.store.transaction() as tx:
        return [(gseq, event_id) for gseq, event_id in await tx.session.execute(stmt)]


async def outbox_rows(stack: Stack) -> list[OutboxRow]:
    async with stack.services.store.transaction() as tx:
        stmt = select(OutboxRow).order_by(OutboxRow.created_at, OutboxRow.event_id)
        return list((await tx.session.execute(stmt)).scalars())


async def drain(publisher: OutboxPublisher, timeout_s: float = 60.0) -> None:
    """Run rounds until every outbox row is done."""
    deadline = time.monotonic() + timeout_s
    while await publisher.pending() > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{await publisher.pending()} outbox rows still pending")
        if (await publisher.run_once()).claimed == 0:
            await asyncio.sleep(0.1)


async def wait_connected(pool: RelayPool, url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await pool.is_connected(url):
        if time.monotonic() > deadline:
            raise AssertionError(f"the pool did not reconnect to {url}")
        await asyncio.sleep(0.1)


async def wait_disconnected(pool: RelayPool, url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while await pool.is_connected(url):
        if time.monotonic() > deadline:
            raise AssertionError(f"the pool still thinks it is connected to {url}")
        await asyncio.sleep(0.05)


async def fetch_whole_log(pool: RelayPool, stack: Stack, count: int) -> list[dict[str, Any]]:
    operator = stack.services.signer.get_public_key()
    return await pool.fetch_log(operator, stack.settings.kind_log_entry, range(count))


def gseq_of(event: dict[str, Any]) -> int:
    return int(next(tag[1] for tag in event["tags"] if tag[0] == "gseq"))


@contextlib.asynccontextmanager
async def serving_relay(implementation: str, directory: Path) -> AsyncIterator[str]:
    """The URL of a relay running under ``directory`` until the block ends: ``embedded``
    (nostr-sdk's LocalRelay, as taskhold runs it) or ``nostr-relay`` (PyPI, its own process)."""
    if implementation == "embedded":
        relay = EmbeddedRelay(directory / "relay-data")
        try:
            yield await relay.start()
        finally:
            await relay.stop()
        return
    process = NostrRelayProcess(directory / "nostr-relay")
    process.start()
    try:
        yield process.url
    finally:
        process.stop()
