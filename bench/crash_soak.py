"""Crash soak: kill a real ``taskhold serve`` (simulator) at every crash point, many times, on
SQLite and on PostgreSQL, and print the crash-point table: runs, how many really crashed there,
and what the checks found (double payouts, stuck escrows, log gaps). The harness is
``tests/support/crash_harness.py``; CI runs the same runs a few times per point
(``tests/escrow/test_crash_harness.py``). PostgreSQL needs ``TASKHOLD_TEST_PG_URL`` (an
admin URL, as for the tests: each run gets a fresh database, dropped afterwards).

    python bench/crash_soak.py [--runs 20] [--jobs 2] [--point after_payout ...]
                               [--database sqlite|postgresql ...] [--keep DIR]

Exits 1 if any run did not converge. Interrupted (Ctrl-C), it prints the table of the runs done.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.crash_harness import ForkServer, Outcome, run_point
from support.stacks import PG_ADMIN_URL, new_database

from taskhold.escrow.crashpoints import CRASH_POINTS

DATABASES = ["sqlite", "postgresql"]


async def soak(
    points: list[str],
    databases: list[str],
    runs: int,
    jobs: int,
    directory: Path,
    done: list[tuple[str, Outcome]],
) -> None:
    """Append each run's (database, outcome) to ``done`` as it ends (so an interrupted soak still
    reports)."""
    forks = ForkServer()
    limit = asyncio.Semaphore(jobs)

    async def one(database: str, point: str, run: int) -> None:
        async with limit:
            run_dir = directory / f"{database}-{point}-{run}"
            data_dir = run_dir / "data"
            try:
                async with new_database(database, run_dir / "db") as url:
                    env = {"TASKHOLD_DATABASE_URL": url}
                    outcome = await run_point(forks, point, data_dir, extra_env=env)
            except Exception as exc:  # a harness failure is a finding too, not a crash of the soak
                outcome = Outcome(point=point, crashed=False, stuck=[f"harness: {exc!r}"])
                notes = "\n".join(getattr(exc, "__notes__", []))
                print(f"{database} {point} run {run + 1}: {exc!r}\n{notes}", file=sys.stderr)
            done.append((database, outcome))
            mark = "ok" if outcome.ok else "FAIL"
            print(
                f"{database:10} {point:30} run {run + 1:2}: {mark} ({outcome.seconds:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            for problem in outcome.double_payouts + outcome.stuck + outcome.gaps:
                print(f"    {problem}  [{data_dir}]", file=sys.stderr)

    try:
        await asyncio.gather(
            *(
                one(database, point, run)
                for run in range(runs)
                for point in points
                for database in databases
            )
        )
    finally:
        forks.close()


def table(outcomes: list[tuple[str, Outcome]], points: list[str], databases: list[str]) -> str:
    groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for database, outcome in outcomes:
        groups[outcome.point, database].append(outcome)
    header = (
        f"| {'crash point':28} | database   | runs | crashed | double payouts | stuck | gaps "
        "| s/run |",
        f"|{'-' * 30}|------------|------|---------|----------------|-------|------|-------|",
    )
    rows = []
    for point in points:
        for database in databases:
            group = groups[point, database]
            seconds = sum(o.seconds for o in group) / max(1, len(group))
            rows.append(
                f"| {point:28} | {database:10} | {len(group):4} "
                f"| {sum(o.crashed for o in group):7} "
                f"| {sum(bool(o.double_payouts) for o in group):14} "
                f"| {sum(bool(o.stuck) for o in group):5} "
                f"| {sum(bool(o.gaps) for o in group):4} | {seconds:5.1f} |"
            )
    return "\n".join([*header, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per crash point")
    parser.add_argument("--jobs", type=int, default=2, help="runs at the same time")
    parser.add_argument("--point", action="append", choices=list(CRASH_POINTS))
    parser.add_argument(
        "--database",
        action="append",
        choices=DATABASES,
        help="sqlite, postgresql (default: both; PostgreSQL needs TASKHOLD_TEST_PG_URL)",
    )
    parser.add_argument("--keep", type=Path, help="keep the runs' data directories here")
    args = parser.parse_args()
    points = args.point or list(CRASH_POINTS)
    databases = args.database or DATABASES
    if "postgresql" in databases and not PG_ADMIN_URL:
        parser.error("PostgreSQL runs need TASKHOLD_TEST_PG_URL (or --database sqlite)")
    directory = args.keep or Path(tempfile.mkdtemp(prefix="taskhold-crash-soak-"))
    outcomes: list[tuple[str, Outcome]] = []
    try:
        asyncio.run(soak(points, databases, args.runs, args.jobs, directory, outcomes))
    except KeyboardInterrupt:
        print(f"interrupted after {len(outcomes)} runs", file=sys.stderr)
    print(table(outcomes, points, databases))
    return 0 if all(o.ok for _, o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
