"""A PostgreSQL cluster of the test's own, to restart at will without touching the shared server.

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``): ``initdb`` in a temporary
directory, trust authentication on a free loopback port, no fsync (nothing here must survive a
power cut; an ``immediate`` stop still leaves a cluster that must recover by WAL replay). The
server refuses to run as root, so under root it runs as the ``postgres`` system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskhold.server import free_port

__all__ = ["PrivatePostgres", "postgres_bin_dir", "private_postgres"]


def postgres_bin_dir() -> Path | None:
    """The newest installed server's binaries, or None when there is none."""
    versions = sorted(
        (path for path in Path("/usr/lib/postgresql").glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


class PrivatePostgres:
    """One cluster: :meth:`start`, :meth:`stop` (``immediate`` by default: a crash) and
    :meth:`remove`. ``url`` reaches its ``postgres`` database as the ``postgres`` superuser."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="taskhold-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            owner = pwd.getpwnam(self._user)
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin_dir / tool), *args],
            user=self._user,
            cwd=self.directory,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr[-2000:]}\n{self.log_tail()}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
            " -c unix_socket_directories=''"  # TCP only: no socket path to outgrow
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started cluster of the test's own, removed afterwards. Missing server binaries skip
    the test outside scripts/test and fail it under scripts/test (TASKHOLD_REQUIRE_PG=1)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        if os.environ.get("TASKHOLD_REQUIRE_PG") == "1":
            pytest.fail("TASKHOLD_REQUIRE_PG=1 but no PostgreSQL server binaries are installed")
        # outside scripts/test (which installs Debian's postgresql and sets TASKHOLD_REQUIRE_PG)
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
    cluster = PrivatePostgres(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
