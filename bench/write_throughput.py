"""Write throughput: signed create-task requests per second against taskhold, next to a bare
FastAPI endpoint receiving the same bodies, measured in the same run.

Both servers run as separate uvicorn processes on loopback (one worker each); the load comes
from this process with a fixed number of concurrent connections. Events are signed before the
clock starts, so the figures are the server's cost: signature check, replay and idempotency
records, the state machine, the signed public log entries, the audit journal and the commit.

The server runs with everything a write passes through switched on: the public log (always),
the audit journal (always), the reputation gate asking strangers for proof of work
(``TASKHOLD_POW_MAX_BITS``) and each create pledging a deposit in its place.

With ``TASKHOLD_BENCH_PROFILE=<dir>`` the taskhold server runs under cProfile and leaves one
``.pstats`` file per run in ``<dir>`` (the bench's own wrapper; product code is untouched).

    python bench/write_throughput.py [--requests 2000] [--concurrency 16] [--database URL]
    python bench/write_throughput.py --measure [--quick]     # both databases, as bench/run.py
    python bench/write_throughput.py --sweep [--quick]       # concurrency 1..32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# This checkout's taskhold, as ``-m taskhold.cli`` run from ROOT imports it, also for the
# profiled server this script runs itself (``--profiled-serve``): run as ``python
# bench/write_throughput.py`` the folder on ``sys.path`` is bench/, and the installed taskhold
# (another worktree's) would be measured instead.
sys.path.insert(0, str(ROOT))

from taskhold.nostr import NostrKeys  # noqa: E402

PG_ADMIN_ENV = "TASKHOLD_TEST_PG_URL"
PROFILE_ENV = "TASKHOLD_BENCH_PROFILE"
SWEEP_CONCURRENCY = (1, 2, 4, 8, 16, 32)
RATIO_TARGET = 0.5
P99_TARGET_MS = 50.0

Body = tuple[dict[str, object], str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {cmd}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server on port {port} did not start: {cmd}")


def signed_bodies(n: int) -> list[Body]:
    keys = [NostrKeys.generate() for _ in range(16)]
    now = int(time.time())
    bodies: list[Body] = []
    for i in range(n):
        content = {
            "title": f"task {i}",
            "description": "benchmark",
            "amount_msat": 100_000,
            "deadline_at": now + 3600,
            "deposit": True,  # a stranger's create passes the proof-of-work gate by pledging one
        }
        event = keys[i % len(keys)].sign_event(3912, json.dumps(content), [["op", "create"]], now)
        bodies.append(({"request": event}, uuid.uuid4().hex))
    return bodies


async def load(url: str, bodies: list[Body], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    queue: asyncio.Queue[Body] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    failures = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            body, key = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                failures += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "latencies_ms": [1000 * seconds for seconds in latencies],
        "elapsed_s": elapsed,
        "failures": failures,
    }


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the server ``TASKHOLD_TEST_PG_URL`` names, dropped after
    (as ``tests/support/stacks.new_database`` makes them)."""
    from sqlalchemy import make_url

    admin_url = os.environ[PG_ADMIN_ENV]
    name = f"taskhold_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_admin(url: str, statement: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(statement)
    await admin.dispose()


@contextlib.contextmanager
def servers(database_url: str | None, label: str) -> Iterator[tuple[str, str]]:
    """taskhold and the bare endpoint, each in its own uvicorn process: their base URLs."""
    data_dir = tempfile.mkdtemp(prefix="taskhold-bench-")
    env = dict(os.environ, TASKHOLD_DATA_DIR=data_dir, TASKHOLD_LOG_LEVEL="WARNING")
    # One load generator, sixteen keys: the write rate limits would measure themselves.
    env.update(TASKHOLD_RATE_LIMIT_IP_PER_S="0", TASKHOLD_RATE_LIMIT_PUBKEY_PER_S="0")
    env["TASKHOLD_POW_MAX_BITS"] = "8"  # the reputation gate is on; creates pledge deposits
    if database_url:
        env["TASKHOLD_DATABASE_URL"] = database_url
    taskhold_port, bare_port = free_port(), free_port()
    serve = [sys.executable, "-m", "taskhold.cli"]
    profile_dir = os.environ.get(PROFILE_ENV)
    if profile_dir:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        out = Path(profile_dir) / f"{label}-{int(time.time())}.pstats"
        serve = [sys.executable, str(Path(__file__).resolve()), "--profiled-serve", str(out)]
    procs = [
        start([*serve, "serve", "--port", str(taskhold_port)], env, taskhold_port),
        start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.bare_app:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
            ],
            env,
            bare_port,
        ),
    ]
    try:
        yield f"http://127.0.0.1:{taskhold_port}", f"http://127.0.0.1:{bare_port}"
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_pair(
    ours_url: str, bare_url: str, requests: int, concurrency: int, *, rounds: int = 4
) -> tuple[dict[str, float], dict[str, float]]:
    """The same signed bodies against the bare endpoint and taskhold, in alternating rounds,
    so that a change in the machine's load falls on both sides of the ratio alike."""
    bodies = signed_bodies(requests)
    size = -(-requests // rounds)
    bare_rounds, our_rounds = [], []
    for start_at in range(0, requests, size):
        chunk = bodies[start_at : start_at + size]
        bare_rounds.append(asyncio.run(load(bare_url, chunk, concurrency)))
        our_rounds.append(asyncio.run(load(ours_url, chunk, concurrency)))
    return combined(bare_rounds), combined(our_rounds)


def combined(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """One figure for several rounds: requests over total time, percentiles over all."""
    latencies = sorted(ms for result in rounds for ms in result["latencies_ms"])
    elapsed = sum(result["elapsed_s"] for result in rounds)
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "failures": sum(result["failures"] for result in rounds),
    }


def warm_up(ours_url: str, bare_url: str, concurrency: int) -> None:
    run_pair(ours_url, bare_url, 100, concurrency)


@contextlib.contextmanager
def database(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    with pg_database() as url:
        yield url


def databases() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(PG_ADMIN_ENV) else ["sqlite"]


def measure(*, quick: bool) -> dict[str, object]:
    """The figures bench/run.py prints: per database, taskhold and bare throughput, their
    ratio and both p99s, at 16 concurrent connections (the bare endpoint's p99 shows what the
    host allows: 16 requests in flight on one event loop queue behind each other)."""
    requests = 400 if quick else 1000
    figures: dict[str, object] = {"write_requests": requests, "write_concurrency": 16}
    for kind in databases():
        print(f"write_throughput: {kind}, {requests} requests", file=sys.stderr)
        with database(kind) as url, servers(url, kind) as (ours_url, bare_url):
            warm_up(ours_url, bare_url, 16)
            bare, ours = run_pair(ours_url, bare_url, requests, 16)
        figures.update(
            {
                f"{kind}_rps": round(ours["rps"], 1),
                f"{kind}_bare_rps": round(bare["rps"], 1),
                f"{kind}_ratio": round(ours["rps"] / bare["rps"], 3),
                f"{kind}_ratio_target": RATIO_TARGET,
                f"{kind}_p50_ms": round(ours["p50_ms"], 2),
                f"{kind}_p99_ms": round(ours["p99_ms"], 2),
                f"{kind}_p99_target_ms": P99_TARGET_MS,
                f"{kind}_bare_p99_ms": round(bare["p99_ms"], 2),
                f"{kind}_failures": int(ours["failures"]),
            }
        )
    return figures


def sweep(*, quick: bool) -> list[dict[str, object]]:
    """Throughput of taskhold and the bare endpoint at each concurrency in
    ``SWEEP_CONCURRENCY``, per database: the points of ``bench/run.py``'s chart."""
    points: list[dict[str, object]] = []
    for kind in databases():
        with database(kind) as url, servers(url, f"sweep-{kind}") as (ours_url, bare_url):
            warm_up(ours_url, bare_url, 8)
            for concurrency in SWEEP_CONCURRENCY:
                requests = max(100 if quick else 500, 10 * concurrency)
                print(f"write sweep: {kind} concurrency {concurrency}", file=sys.stderr)
                bare, ours = run_pair(ours_url, bare_url, requests, concurrency)
                points.append(
                    {
                        "database": kind,
                        "concurrency": concurrency,
                        "rps": round(ours["rps"], 1),
                        "bare_rps": round(bare["rps"], 1),
                        "p99_ms": round(ours["p99_ms"], 2),
                        "bare_p99_ms": round(bare["p99_ms"], 2),
                    }
                )
    return points


def profiled_serve(out: str, argv: list[str]) -> None:
    """Run ``taskhold.cli`` under cProfile; the stats are written when the server stops
    (uvicorn exits cleanly on SIGTERM)."""
    import cProfile
    import signal

    from taskhold.cli import main as cli_main

    profiler = cProfile.Profile()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.argv = ["taskhold", *argv]
    profiler.enable()
    try:
        cli_main()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(out)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--profiled-serve":
        profiled_serve(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--measure", action="store_true", help="both databases, as run.py")
    parser.add_argument("--sweep", action="store_true", help="concurrency 1..32")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(quick=args.quick), indent=2))
        return
    if args.sweep:
        print(json.dumps(sweep(quick=args.quick), indent=2))
        return
    with servers(args.database, "main") as (ours_url, bare_url):
        warm_up(ours_url, bare_url, args.concurrency)
        bare, ours = run_pair(ours_url, bare_url, args.requests, args.concurrency)
    name = "PostgreSQL" if args.database else "SQLite"
    print(
        f"signed create-task writes, {args.requests} requests, {args.concurrency} concurrent, "
        f"{name}"
    )
    for label, result in (("bare FastAPI", bare), ("taskhold", ours)):
        print(
            f"  {label:13s} {result['rps']:8.1f} req/s   p50 {result['p50_ms']:7.2f} ms   "
            f"p99 {result['p99_ms']:7.2f} ms   failures {int(result['failures'])}"
        )
    print(f"  ratio taskhold/bare throughput: {ours['rps'] / bare['rps']:.3f}")


if __name__ == "__main__":
    main()
