"""SQLite serves one process: a second ``taskhold serve`` on the same database is refused at
start, in one clear line, pointing at PostgreSQL for replicas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskhold.settings import Settings
from taskhold.store.alone import SQLiteTaken, one_process_on_sqlite


def _serve(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "HOME": str(data_dir),
        "COLUMNS": "30",  # a narrow terminal: the refusal stays on one line all the same
    }
    command = [sys.executable, "-m", "taskhold.cli", "serve", "--data-dir", str(data_dir)]
    command += ["--lightning", "sim", "--port", "0"]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_a_second_serve_on_one_sqlite_database_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    url = Settings(data_dir=data_dir).resolved_database_url
    with one_process_on_sqlite(url):  # the first serve
        result = _serve(data_dir)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "SQLite serves one process" in line]
    assert "already runs on the SQLite database" in line
    assert "PostgreSQL" in line


def test_the_sqlite_hold_is_exclusive_and_ends_with_its_holder(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'taskhold.db'}"
    with one_process_on_sqlite(url), pytest.raises(SQLiteTaken), one_process_on_sqlite(url):
        pass
    with one_process_on_sqlite(url):  # given back: the next serve may start
        pass


def test_postgresql_is_never_held() -> None:
    url = "postgresql+asyncpg://taskhold@db/taskhold"
    with one_process_on_sqlite(url), one_process_on_sqlite(url):
        pass
