"""Crash safety on the simulator: a real ``taskhold serve`` is killed (SIGKILL) at every named
crash point, restarted on the same data directory, and must converge: no double payout, no
stuck escrow, no gap in the public log. Several runs per point; ``bench/crash_soak.py`` runs
more and prints the table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_harness import ForkServer, run_point

from taskhold.escrow.crashpoints import CRASH_POINTS

RUNS_PER_POINT = 3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()


@pytest.mark.parametrize("run", range(RUNS_PER_POINT))
@pytest.mark.parametrize("point", list(CRASH_POINTS))
async def test_serve_killed_at_a_crash_point_converges_after_restart(
    forks: ForkServer, point: str, run: int, tmp_path: Path
) -> None:
    outcome = await run_point(forks, point, tmp_path / "data")
    log = (tmp_path / "data" / "serve.log").read_text()[-3000:]
    assert outcome.crashed, f"serve was not killed at {point}\n{log}"
    assert outcome.double_payouts == [], log
    assert outcome.stuck == [], log
    assert outcome.gaps == [], log
