"""Every benchmark of issue #17 in one run, as one table of ratios against baselines measured in
the same run, with the write path's throughput-against-concurrency chart beside it.

    python bench/run.py [--quick] [--json] [--only NAME ...] [--chart PATH]

Each bench module exposes ``measure(*, quick: bool) -> dict`` of named figures (the baseline and
its ratio included); this script runs them one after another, never side by side, so that no
benchmark measures another. The targets are a table below: one row per figure the issue names,
with the bound it must meet. A module that fails is reported as such and the others still run;
the exit status is 1 when any benchmark failed to run, 0 otherwise, missed targets included
(a missed target is a finding, not a crash). ``--json`` prints one object with the same names
as the table: ``{"quick", "figures": {bench: {...}}, "targets": [...], "errors", "chart"}``.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchkit import BENCH, load_bench

DEFAULT_CHART = BENCH / "results" / "write-concurrency.png"

# The benchmarks in the order they run: the name used in the table and in --json, and the file.
BENCHES: dict[str, str] = {
    "writes": "write_throughput.py",
    "audit": "audit_throughput.py",
    "rebuild": "rebuild_throughput.py",
    "engine_tick": "engine_tick.py",
    "funding_detection": "funding_detection.py",
    "devnet_lifecycle": "devnet_lifecycle.py",
    "reputation": "reputation_indexer.py",
}


@dataclass(frozen=True)
class Target:
    """One bound of the issue: ``figures[bench][key] <op> bound``."""

    label: str
    bench: str
    key: str
    op: str  # ">=" or "<="
    bound: float


TARGETS: tuple[Target, ...] = (
    Target("writes SQLite, throughput / bare FastAPI", "writes", "sqlite_ratio", ">=", 0.5),
    Target("writes SQLite, p99 ms at 16 concurrent", "writes", "sqlite_p99_ms", "<=", 50),
    Target("writes PostgreSQL, throughput / bare", "writes", "postgresql_ratio", ">=", 0.5),
    Target("writes PostgreSQL, p99 ms at 16 concurrent", "writes", "postgresql_p99_ms", "<=", 50),
    Target("audit, 1 core / bare coincurve", "audit", "ratio_1core", ">=", 0.6),
    Target("audit, 2 cores / bare coincurve (1 core)", "audit", "ratio_2core", ">=", 1.2),
    Target("rebuild SQLite, seconds for 100,000 entries", "rebuild", "seconds_100k", "<=", 60),
    Target("rebuild PostgreSQL, s for 100,000 entries", "rebuild", "pg_seconds_100k", "<=", 60),
    Target("funding seen, p99 ms", "funding_detection", "funding_detect_ms_p99", "<=", 100),
    Target("engine tick SQLite, 100,000 open / 100", "engine_tick", "sqlite_ratio", "<=", 1.5),
    Target("engine tick PostgreSQL, 100,000 / 100", "engine_tick", "postgresql_ratio", "<=", 1.5),
    Target("devnet lifecycle / raw lnd REST", "devnet_lifecycle", "ratio", "<=", 1.2),
)

OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


# The benches that need a regtest devnet: they share one (bench/devnet_support.py brings it up
# once unless TASKHOLD_BENCH_DEVNET names a running one).
ON_DEVNET = ("funding_detection", "devnet_lifecycle")


def run(names: list[str], *, quick: bool) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    if os.environ.get("TASKHOLD_BENCH_DEVNET") or not any(n in ON_DEVNET for n in names):
        return _run(names, quick=quick)
    with load_bench("devnet_support.py").devnet() as connection_file:
        os.environ["TASKHOLD_BENCH_DEVNET"] = str(connection_file.parent)
        try:
            return _run(names, quick=quick)
        finally:
            del os.environ["TASKHOLD_BENCH_DEVNET"]


def _run(names: list[str], *, quick: bool) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    figures: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for name in names:
        started = time.perf_counter()
        print(f"bench/run.py: {name} ...", file=sys.stderr, flush=True)
        try:
            figures[name] = dict(load_bench(BENCHES[name]).measure(quick=quick))
        except Exception as exc:  # one broken bench must not hide the others' figures
            errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
            continue
        figures[name]["wall_s"] = round(time.perf_counter() - started, 1)
    return figures, errors


def judge(figures: dict[str, dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for target in (t for t in TARGETS if t.bench in names):
        value = figures.get(target.bench, {}).get(target.key)
        met = None if value is None else OPS[target.op](float(value), target.bound)
        rows.append(
            {
                "target": target.label,
                "bench": target.bench,
                "figure": target.key,
                "value": value,
                "bound": f"{target.op} {target.bound:g}",
                "met": met,
            }
        )
    return rows


def chart(path: Path, *, quick: bool) -> Path:
    """Throughput of taskhold and of the bare endpoint against concurrency, on both databases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = load_bench(BENCHES["writes"]).sweep(quick=quick)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for database in sorted({p["database"] for p in points}):
        mine = [p for p in points if p["database"] == database]
        xs = [p["concurrency"] for p in mine]
        ax.plot(xs, [p["rps"] for p in mine], marker="o", label=f"taskhold ({database})")
        ax.plot(xs, [p["bare_rps"] for p in mine], marker="x", ls="--", label=f"bare ({database})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel("signed create-task writes per second")
    ax.set_title("taskhold write path against a bare FastAPI endpoint, same run")
    ax.grid(True, alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def print_table(figures: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    print(f"{'target':46s} {'value':>12s}  {'bound':>9s}  result")
    for row in rows:
        result = {True: "met", False: "MISSED", None: "not measured"}[row["met"]]
        value = "-" if row["value"] is None else show(row["value"])
        print(f"{row['target']:46s} {value:>12s}  {row['bound']:>9s}  {result}")
    print()
    for name, values in figures.items():
        print(f"{name}: " + ", ".join(f"{k}={show(v)}" for k, v in values.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 5 minutes")
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), help="run only these")
    parser.add_argument("--chart", type=Path, default=DEFAULT_CHART, help="the PNG to write")
    parser.add_argument("--no-chart", action="store_true", help="skip the concurrency sweep")
    args = parser.parse_args()

    names = args.only or list(BENCHES)
    figures, errors = run(names, quick=args.quick)
    chart_path = None
    if not args.no_chart and "writes" in names:
        try:
            chart_path = str(chart(args.chart, quick=args.quick))
        except Exception as exc:
            errors["chart"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
    rows = judge(figures, names)
    if args.json:
        out = {"quick": args.quick, "figures": figures, "targets": rows, "errors": errors}
        print(json.dumps(out | {"chart": chart_path}))
    else:
        print_table(figures, rows)
        for name, error in errors.items():
            print(f"{name}: FAILED TO RUN: {error}")
        if chart_path:
            print(f"chart: {chart_path}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
