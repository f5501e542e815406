"""Running ``taskhold task …`` in process, and a real ``taskhold serve`` on the simulator for it.

Every run is checked for what a participant must never see: a traceback, or an exception that
escaped the command's own error handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from support.crash_harness import ExecLauncher, Serve
from taskhold.cli import cli


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The one JSON object ``--json`` prints (any other line on stdout fails the test)."""
        (line,) = self.stdout.splitlines()
        value = json.loads(line)
        assert isinstance(value, dict)
        return value


def task_cli(*args: str, env: dict[str, str] | None = None) -> Ran:
    """``taskhold task ARGS``; ``env`` adds to a TASKHOLD_*-free environment."""
    clean = {name: None for name in os.environ if name.startswith("TASKHOLD_")}
    result = CliRunner().invoke(cli, ["task", *args], env={**clean, **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return Ran(result.exit_code, result.stdout, result.stderr)


async def task_cli_process(*args: str, env: dict[str, str] | None = None) -> Ran:
    """``taskhold task ARGS`` in its own process, awaited without blocking this event loop: for
    tests whose nostr-sdk peers (a remote signer, an NWC wallet service) run on this loop.
    nostr-sdk's async calls answer on the one event loop registered last in a process, so a
    command run in process, on a loop of its own, would starve them."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("TASKHOLD_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskhold.cli", "task", *args,
        env={**clean, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate()
    ran = Ran(process.returncode or 0, stdout.decode(), stderr.decode())
    assert "Traceback" not in ran.stderr, ran.stderr
    return ran


def key_file(path: Path) -> Path:
    """A new participant key file, made by ``taskhold task keygen``."""
    ran = task_cli("keygen", "--key-file", str(path))
    assert ran.code == 0, ran.stderr
    return path


def serve_on_lnd(connection_file: Path, data_dir: Path) -> Serve:
    """``taskhold serve --lightning lnd`` on the devnet's nodes (not started yet): its hold
    expiry from the devnet, a short payout timeout."""
    connection = json.loads(connection_file.read_text())
    return Serve(
        ExecLauncher(),
        data_dir,
        {
            "TASKHOLD_LND_CONNECTION_FILE": str(connection_file),
            "TASKHOLD_HOLD_EXPIRY_DELTA": str(connection.get("hold_expiry_delta", 18)),
            "TASKHOLD_PAYOUT_TIMEOUT_S": "20",
        },
        lightning="lnd",
    )


@contextlib.contextmanager
def serve_on_sim(data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Serve]:
    """``taskhold serve --lightning sim`` with the sim routes, fast ticks, until the block ends."""
    serve = Serve(ExecLauncher(), data_dir, extra_env or {})
    serve.start(crash_at=None)
    try:
        asyncio.run(serve.wait_up())
        yield serve
    finally:
        asyncio.run(serve.stop())
