"""Running ``taskhold task …`` in process, and a real ``taskhold serve`` on the simulator for it.

Every run is checked for what a participant must never see: a traceback, or an exception that
escaped the command's own error handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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


def key_file(path: Path) -> Path:
    """A new participant key file, made by ``taskhold task keygen``."""
    ran = task_cli("keygen", "--key-file", str(path))
    assert ran.code == 0, ran.stderr
    return path


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
