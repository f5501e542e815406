"""A private devnet for the devnet benches (funding detection, one lifecycle), and taskhold on
its escrow node.

``TASKHOLD_BENCH_DEVNET=DIR`` uses a devnet already running in DIR (left running); otherwise
one is brought up in a fresh directory on the first free block of ports from 31000 and brought
down afterwards. Load it with importlib (``bench/`` is no package).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from taskhold.api.application import create_api
from taskhold.client import TaskholdClient
from taskhold.devnet.layout import ports_free
from taskhold.nostr import NostrKeys
from taskhold.services import Services, build_services
from taskhold.settings import Settings


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "taskhold.cli", "devnet", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _free_base_port() -> int:
    for base_port in range(31000, 33000, 100):
        if not ports_free(base_port, 1):
            return base_port
    raise RuntimeError("no free block of loopback ports in 31000-33000 for a devnet")


@contextlib.contextmanager
def devnet() -> Iterator[Path]:
    """The connection file of a running devnet (see the module's docstring)."""
    given = os.environ.get("TASKHOLD_BENCH_DEVNET")
    if given:
        yield Path(given) / "devnet.json"
        return
    data_dir = Path(tempfile.mkdtemp(prefix="taskhold-bench-devnet-"))
    up = ["up", "--data-dir", str(data_dir), "--base-port", str(_free_base_port())]
    if os.environ.get("TASKHOLD_BIN_DIR"):
        up += ["--bin-dir", os.environ["TASKHOLD_BIN_DIR"]]
    started = _cli(*up)
    try:
        if started.returncode != 0:
            raise RuntimeError(f"devnet up failed: {started.stdout[-500:]}{started.stderr[-500:]}")
        yield data_dir / "devnet.json"
    finally:
        _cli("down", "--data-dir", str(data_dir))


@contextlib.asynccontextmanager
async def taskhold_on(connection_file: Path, directory: Path) -> AsyncIterator[Services]:
    """taskhold (SQLite) on the devnet's escrow lnd, its engine running as under ``serve``."""
    settings = Settings(
        data_dir=directory,
        database_url=f"sqlite+aiosqlite:///{directory / 'taskhold.sqlite3'}",
        lightning="lnd",
        lnd_connection_file=connection_file,
        rate_limit_pubkey_per_s=0,
        rate_limit_ip_per_s=0,
    )
    services = await build_services(settings)
    await services.engine.start()
    try:
        yield services
    finally:
        await services.close()


def api_client(services: Services) -> tuple[httpx.AsyncClient, TaskholdClient]:
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(services, run_engine=False)),
        base_url="http://taskhold.bench",
        timeout=120,
    )
    return http, TaskholdClient("http://taskhold.bench", NostrKeys.generate(), http=http)
