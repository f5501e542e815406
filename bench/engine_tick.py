"""One engine tick over 100 and over 100,000 open tasks, 10 of them due, in the same run.

taskhold on the Lightning simulator (in process). One task is created and funded through the
API; its row is the template of the other open tasks, which are bulk-inserted straight into
the ``tasks`` table (funded, deadline a day away, hold far from expiry: nothing due). Before
each measured tick 10 more copies are inserted whose deadline has passed: the tick orders and
completes their refunds (the timer, the refund's cancel at the node, the log entries). The
figure is the median tick (``run_once`` and the payments it starts) of a few such rounds at
each size; ``ratio`` is 100k / 100, the issue's target being about 1.

    python bench/engine_tick.py [--quick] [--profile FILE] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from benchkit import fund_one, new_database, on_simulator
from sqlalchemy import insert, select

from taskhold.client import TaskholdClient
from taskhold.lightning.simworld import SimWorld
from taskhold.logs import configure_logging
from taskhold.nostr import NostrKeys
from taskhold.services import Services
from taskhold.settings import Settings
from taskhold.store.codec import task_from_data
from taskhold.store.models import TaskRow
from taskhold.store.repo import projection_values

AMOUNT_MSAT = 150_000_000
DAY_S = 86_400
DUE = 10
ROUNDS = 5
CHUNK = 5_000


def _progress(message: str) -> None:
    print(f"[engine_tick] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, services: Services, world: SimWorld, http: httpx.AsyncClient) -> None:
        self.services, self.world, self.http = services, world, http
        self.template: dict[str, Any] = {}

    @classmethod
    async def open(cls, database_url: str, directory: Path) -> Bench:
        settings = Settings(
            data_dir=directory,
            database_url=database_url,
            rate_limit_pubkey_per_s=0,
            rate_limit_ip_per_s=0,
        )
        services, world, http = await on_simulator(settings)
        return cls(services, world, http)

    async def fund_template(self) -> None:
        """One task funded the ordinary way; its projection row is copied for the others."""
        employer = TaskholdClient("http://taskhold.bench", NostrKeys.generate(), http=self.http)
        task = await fund_one(self.services, self.world, employer, AMOUNT_MSAT)
        async with self.services.store.transaction() as tx:
            row = await tx.session.get(TaskRow, task["task_id"])
            assert row is not None and row.state == "FUNDED", "the template task must be funded"
            self.template = {c.name: getattr(row, c.name) for c in TaskRow.__table__.columns}

    async def add_open(self, count: int, *, due: bool = False) -> None:
        """Bulk-insert ``count`` copies of the template: open and not due, or past deadline."""
        rows = []
        for _ in range(count):
            task_id = uuid.uuid4().hex
            payment_hash = os.urandom(32).hex()
            data = dict(self.template["data"], task_id=task_id, payment_hash_hex=payment_hash)
            if due:  # its row as the store writes it: the indexed columns follow the data
                data["deadline_at"] = int(time.time()) - 60
                values = projection_values(task_from_data(data))
                rows.append(dict(values, task_id=task_id))
                continue
            rows.append(
                dict(self.template, task_id=task_id, payment_hash_hex=payment_hash, data=data)
            )
        for start in range(0, len(rows), CHUNK):
            async with self.services.store.transaction() as tx:
                await tx.session.execute(insert(TaskRow), rows[start : start + CHUNK])

    async def open_count(self) -> int:
        async with self.services.store.transaction() as tx:
            states = (await tx.session.execute(select(TaskRow.state))).scalars()
            return sum(1 for state in states if state == "FUNDED")

    async def tick_ms(self, profile: cProfile.Profile | None = None) -> float:
        engine = self.services.engine
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        await engine.run_once()
        await engine.drain()
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
        return elapsed * 1000

    async def close(self) -> None:
        await self.http.aclose()
        await self.services.close()


async def _measure_one(
    kind: str, sizes: tuple[int, int], profile_out: Path | None, rounds: int = ROUNDS
) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix=f"taskhold-bench-tick-{kind}-") as tmp:
        async with new_database(kind, Path(tmp)) as url:
            bench = await Bench.open(url, Path(tmp))
            try:
                await bench.fund_template()
                have = 1
                for size in sizes:
                    _progress(f"{kind}: {size} open tasks")
                    await bench.add_open(size - have)
                    have = size
                    times = [await bench.tick_ms()]  # warms the caches; nothing is due
                    times = []
                    for index in range(rounds):
                        await bench.add_open(DUE, due=True)
                        profile = (
                            cProfile.Profile()
                            if profile_out is not None and index == 0 and size == sizes[1]
                            else None
                        )
                        times.append(await bench.tick_ms(profile))
                        if profile is not None and profile_out is not None:
                            _write_profile(profile, profile_out, kind, size)
                    assert await bench.open_count() == size, "the due tasks must be refunded"
                    figures[f"{kind}_tick_ms_{_label(size)}"] = round(statistics.median(times), 1)
                    idle = [await bench.tick_ms() for _ in range(rounds)]
                    figures[f"{kind}_idle_tick_ms_{_label(size)}"] = round(
                        statistics.median(idle), 1
                    )
            finally:
                await bench.close()
    small, large = (figures[f"{kind}_tick_ms_{_label(s)}"] for s in sizes)
    figures[f"{kind}_ratio"] = round(large / small, 2)
    return figures


def _label(size: int) -> str:
    return "100k" if size == 100_000 else str(size)


def _write_profile(profile: cProfile.Profile, out: Path, kind: str, size: int) -> None:
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
    with out.open("a") as handle:
        handle.write(f"\n## {kind}, {size} open tasks, {DUE} due: top by cumulative time\n\n```\n")
        handle.write(text.getvalue().strip() + "\n```\n")


async def _measure(
    quick: bool,
    profile_out: Path | None,
    with_pg: bool,
    rounds: int = ROUNDS,
    large: int = 100_000,
) -> dict[str, object]:
    configure_logging("WARNING")  # one info line per transition would drown the figures
    sizes = (100, large)
    kinds = ["sqlite"]
    if with_pg and os.environ.get("TASKHOLD_TEST_PG_URL"):
        kinds.append("postgresql")
    figures: dict[str, object] = {}
    for kind in kinds:
        figures.update(await _measure_one(kind, sizes, profile_out, rounds))
    figures["tick_ms_100"] = figures["sqlite_tick_ms_100"]
    figures["tick_ms_100k"] = figures[f"sqlite_tick_ms_{_label(large)}"]
    figures["ratio"] = figures["sqlite_ratio"]
    figures["ratio_target"] = 1.5
    figures["due_per_tick"] = DUE
    return figures


def measure(*, quick: bool) -> dict[str, object]:
    """The issue's sizes in both modes (the bulk insert keeps 100,000 rows fast); quick
    measures SQLite only."""
    return asyncio.run(_measure(quick, None, with_pg=not quick))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", type=Path, help="append the 100k tick's profile here")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="measured ticks per size")
    parser.add_argument("--large", type=int, default=100_000, help="the larger size")
    args = parser.parse_args()
    figures = asyncio.run(
        _measure(
            args.quick, args.profile, with_pg=not args.no_pg, rounds=args.rounds, large=args.large
        )
    )
    for name, value in figures.items():
        print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
