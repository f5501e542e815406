"""Crash safety on the simulator: a real ``taskhold serve`` is killed (SIGKILL) at every named
crash point, restarted on the same data directory (the simulator's state persisted in it), and
must converge: no double payout, no stuck escrow, no gap in the public log.

Three runs per point on SQLite and three on PostgreSQL (serve on a fresh database per run); a
point's runs go at the same time, each with its own serve, data directory and database (a run
mostly waits for ticks and polls). ``scripts/soak-crash`` runs 20 per point on both and prints
the table."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.crash_harness import ForkServer, Outcome, Serve, run_point
from support.relays import NostrRelayProcess
from support.stacks import PG_ADMIN_URL, REQUIRE_PG, new_database

from taskhold.escrow.crashpoints import CRASH_POINTS

RUNS_PER_POINT = {"sqlite": 3, "postgresql": 3}
DATABASES = ["sqlite", *(["postgresql"] if PG_ADMIN_URL or REQUIRE_PG else [])]

# Part of the CI suite (scripts/test); `pytest -m crash` selects it alone.
pytestmark = [pytest.mark.slow, pytest.mark.crash]


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()


def _problems(outcome: Outcome, data_dir: Path) -> str | None:
    """None if the run converged; else what went wrong and the end of its serve log."""
    if outcome.ok:
        return None
    found = outcome.double_payouts + outcome.stuck + outcome.gaps
    if not outcome.crashed:
        found.insert(0, f"serve was not killed at {outcome.point}")
    log = (data_dir / "serve.log").read_text()[-3000:]
    return "\n".join([*found, f"--- {data_dir / 'serve.log'} (end) ---", log])


async def _run(forks: ForkServer, database: str, point: str, directory: Path) -> str | None:
    async with new_database(database, directory / "db") as url:
        env = {"TASKHOLD_DATABASE_URL": url}
        try:
            outcome = await run_point(forks, point, directory / "data", extra_env=env)
        except Exception as exc:  # the harness failed: its notes carry the serve log
            return "\n".join([repr(exc), *getattr(exc, "__notes__", [])])
    return _problems(outcome, directory / "data")


@pytest.mark.parametrize("point", list(CRASH_POINTS))
@pytest.mark.parametrize("database", DATABASES)
async def test_serve_killed_at_a_crash_point_converges_after_restart(
    forks: ForkServer, database: str, point: str, tmp_path: Path
) -> None:
    runs = range(RUNS_PER_POINT[database])
    found = await asyncio.gather(
        *(_run(forks, database, point, tmp_path / f"run{run}") for run in runs)
    )
    failed = [f"run {run}: {problem}" for run, problem in enumerate(found) if problem]
    assert not failed, "\n\n".join(failed)


async def test_a_relay_down_across_the_crash_loses_no_log_entry(
    forks: ForkServer, database_url: str, tmp_path: Path
) -> None:
    """The public log goes to an outside relay that is down from funding to PAID, while serve is
    killed between paying the worker and settling: once the relay is back, every entry is there.
    """
    relay = NostrRelayProcess(tmp_path / "relay")
    url = relay.start()
    relay.stop()  # down before the first write: the outbox must keep everything
    try:
        outcome = await run_point(
            forks,
            "after_payout",
            tmp_path / "data",
            extra_env={"TASKHOLD_RELAYS": url, "TASKHOLD_DATABASE_URL": database_url},
            before_checks=relay.start,
        )
    finally:
        relay.stop()
    assert _problems(outcome, tmp_path / "data") is None


# The harness itself: what made it fail inside the full suite --------------------------------


def test_a_serve_keeps_its_ports_while_it_is_down(forks: ForkServer, tmp_path: Path) -> None:
    """Between the kill and the restart nobody else may get the port (a connection's local port
    or another server's), or the restarted serve cannot listen on it."""
    serve = Serve(forks, tmp_path / "data", {})
    relay_port = int(serve.env["TASKHOLD_EMBEDDED_RELAY_PORT"])
    try:
        for port in (serve.port, relay_port):
            with socket.socket() as other, pytest.raises(OSError, match="in use"):
                other.bind(("127.0.0.1", port))
    finally:
        serve.release_ports()
    for port in (serve.port, relay_port):
        with socket.socket() as other:
            other.bind(("127.0.0.1", port))


def test_the_fork_server_answers_for_a_process_that_ended_long_ago(
    forks: ForkServer, tmp_path: Path
) -> None:
    """A pid is reaped once; asking again (a stop after a failed start) gets the same exit code,
    not a fork server dead of ChildProcessError taking every later run down with it."""
    pid = forks.start(["--help"], dict(os.environ), tmp_path / "help.log")
    while (code := forks.returncode(pid)) is None:
        pass
    assert code == 0
    assert forks.returncode(pid) == 0
    forks.signal(pid, signal.SIGKILL)  # gone: no signal to whoever has the pid now
    assert forks.returncode(forks.start(["--help"], dict(os.environ), tmp_path / "2.log")) in (
        None,
        0,
    )


def test_no_serve_outlives_the_fork_server(tmp_path: Path) -> None:
    own = ForkServer()
    serve = Serve(own, tmp_path / "data", {})
    serve.start(crash_at=None)
    pid = serve.pid
    assert pid is not None
    own.close()
    serve.release_ports()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_failed_run_shows_the_end_of_the_serve_log(
    forks: ForkServer, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="exited with 1 while starting") as failed:
        await run_point(
            forks,
            "after_payout",
            tmp_path / "data",
            extra_env={"TASKHOLD_DATABASE_URL": "nosuchdb://x"},
        )
    assert "serve.log (end)" in failed.value.__notes__[0]
    assert "nosuchdb" in failed.value.__notes__[0]
