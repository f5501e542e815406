"""The crash harness: kill a real ``taskhold serve`` at a named crash point, restart it on the same
data directory, and check that everything converges.

One *run* is: a fresh data directory; ``serve --lightning sim`` started with
``TASKHOLD_CRASH_AT=<point>``; a scenario that drives tasks over HTTP (the simulator's wallet
routes stand in for the employer's and worker's wallets) until the process kills itself with
SIGKILL at the point; a restart without the crash; the scenario carries on until every task is
final. Then the checks, each an outcome in the crash-point table:

- **double payouts**: each payee got each payment at most once, and the money adds up: the
  worker got exactly the reward (or nothing, after a refund), the employer paid exactly once;
- **stuck**: a task not final within the time allowed after the restart, or a hold invoice of
  the escrow node neither settled nor cancelled;
- **gaps**: the public log on the relay misses a ``gseq`` the database has, or the independent
  auditor (``taskhold.audit``) reports any finding.

Starting a Python process that imports taskhold takes seconds on a busy machine, so processes
are forked from a *fork server* that imported taskhold once: the child runs the same
``taskhold serve`` command (``taskhold.cli.cli``), in its own process, killed for real.

A restart reuses the killed process's ports, so the harness holds each port bound
(``SO_REUSEADDR``, never listening) for the whole run. A port merely picked free and let go is
free again from the kill to the restart, and on a busy machine some other socket (another test's
``bind(0)``, an outgoing connection) took it now and then: the restarted serve could not listen
("address already in use", exit 3).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import bolt11
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from taskhold.audit import AuditKinds, FetchSettings, audit_log, fetch_log
from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.escrow.crashpoints import CRASH_POINTS
from taskhold.lightning.base import InvoiceState
from taskhold.lightning.simworld import SimWorld
from taskhold.nostr import NostrKeys

T = TypeVar("T")

AMOUNT_MSAT = 150_000_000
ACCEPTANCE = {"required_fields": ["url"], "url_fields": ["url"]}
SIM_STATE_FILE = "sim-network.json"
SETTLE_TIMEOUT_S = 60.0
ARBITER_KEYS = NostrKeys.from_secret_hex("a1" * 32)
"""The arbiter the split scenarios' rulings come from."""
"""How long after the restart every task has to become final before it counts as stuck."""

SERVE_ENV = {
    "TASKHOLD_ENGINE_TICK_S": "0.1",
    "TASKHOLD_RECONCILE_INTERVAL_S": "1",
    "TASKHOLD_PUBLISH_INTERVAL_S": "0.1",
    "TASKHOLD_PAYOUT_TIMEOUT_S": "5",
    "TASKHOLD_DEFAULT_REVIEW_WINDOW_S": "600",
    "TASKHOLD_DEFAULT_DISPUTE_WINDOW_S": "600",
    "TASKHOLD_POW_MAX_BITS": "4",
    "TASKHOLD_REPUTATION_MAX_STALENESS_S": "0",
    "TASKHOLD_RATE_LIMIT_PUBKEY_PER_S": "0",
    "TASKHOLD_RATE_LIMIT_IP_PER_S": "0",
    "TASKHOLD_RATE_LIMIT_READ_IP_PER_S": "0",
    "TASKHOLD_SIM_ROUTES_ENABLED": "1",
    "TASKHOLD_ARBITERS": ARBITER_KEYS.pubkey_hex,
}
"""Fast ticks so a run takes seconds; a little proof of work so strangers' deposits exist; the
simulator's wallet routes, which the scenarios pay and mine through; an arbiter who splits."""

_FORK_SERVER = r"""
import ctypes, json, os, signal, sys, traceback
import uvicorn, aiosqlite, asyncpg
import taskhold.cli, taskhold.services, taskhold.api.application, taskhold.logs

PR_SET_PDEATHSIG = 1
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the harness is gone: so is the fork server
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # it went before the line above
running, exited = set(), {}


def start(cmd):
    pid = os.fork()
    if pid:
        running.add(pid)
        exited.pop(pid, None)  # a reused pid: what an earlier child's exit said is not about it
        return {"pid": pid}
    code = 1
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # no server outlives the fork server
        os.setpgrp()
        out = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.environ.clear()
        os.environ.update(cmd["env"])
        sys.argv = ["taskhold", *cmd["argv"]]
        taskhold.cli.cli(args=cmd["argv"], prog_name="taskhold")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def poll(cmd):
    pid = cmd["pid"]
    if pid in running:  # reaped once, its code kept: a pid is never waited for twice
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            running.discard(pid)
            exited[pid] = os.waitstatus_to_exitcode(status)
    return {"returncode": exited.get(pid)}


def kill(cmd):
    if cmd["pid"] in running:  # an exited pid may be another process's by now
        os.kill(cmd["pid"], cmd["signal"])
    return {}


OPS = {"start": start, "poll": poll, "signal": kill}
try:
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            answer = OPS[cmd["op"]](cmd)
        except Exception as exc:  # the harness hears of it; the fork server lives on
            answer = {"error": repr(exc)}
        print(json.dumps(answer), flush=True)
finally:  # the harness is gone or closed us: leave no server (nor zombie) behind it
    for pid in running:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
"""


class ForkServer:
    """A Python process that imported taskhold once and forks ``taskhold`` commands on request.

    Every child is killed when the fork server ends (closed, or its harness gone), and the fork
    server ends with the harness process even if that is killed."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server died ({self._process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"fork server: {command['op']} failed: {answer['error']}")
        return answer

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> int:
        return int(self._ask({"op": "start", "argv": argv, "env": env, "log": str(log)})["pid"])

    def returncode(self, pid: int) -> int | None:
        code = self._ask({"op": "poll", "pid": pid})["returncode"]
        return None if code is None else int(code)

    def signal(self, pid: int, number: int) -> None:
        self._ask({"op": "signal", "pid": pid, "signal": number})

    def close(self) -> None:
        """Kills every child still running, then ends the fork server."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)


class ExecLauncher:
    """Starts each ``taskhold`` command as a new interpreter (``python -m taskhold.cli``)."""

    def __init__(self) -> None:
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> int:
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "taskhold.cli", *argv],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._processes[process.pid] = process
        return process.pid

    def returncode(self, pid: int) -> int | None:
        return self._processes[pid].poll()

    def signal(self, pid: int, number: int) -> None:
        self._processes[pid].send_signal(number)


Launcher = ForkServer | ExecLauncher


def held_port() -> socket.socket:
    """A loopback port kept bound (``SO_REUSEADDR``, not listening) while the socket is open.

    ``taskhold serve`` (whose listeners set ``SO_REUSEADDR`` too) can listen on it, and listen
    on it again after a SIGKILL, while the kernel hands it out to nobody else meanwhile: not to
    ``bind(0)``, not as the local port of an outgoing connection."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Serve:
    """One data directory's ``taskhold serve``, started and restarted on the same ports."""

    def __init__(
        self,
        forks: Launcher,
        data_dir: Path,
        extra_env: dict[str, str],
        lightning: str = "sim",
    ) -> None:
        self.forks = forks
        self.lightning = lightning
        self.data_dir = data_dir
        self._ports = [held_port(), held_port()]
        self.port, relay_port = (int(s.getsockname()[1]) for s in self._ports)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TASKHOLD_")},
            **SERVE_ENV,
            "TASKHOLD_EMBEDDED_RELAY_PORT": str(relay_port),
            **extra_env,
        }
        self.pid: int | None = None
        self.exit_code: int | None = None
        """How the last process ended (``-9``: SIGKILL), once it has."""
        self.kills = 0
        """How often the process died by SIGKILL (at the crash point)."""

    def start(self, crash_at: str | None) -> None:
        assert self.pid is None, "taskhold serve is still running"
        env = dict(self.env)
        if crash_at is not None:
            env["TASKHOLD_CRASH_AT"] = crash_at
        argv = ["serve", "--lightning", self.lightning, "--port", str(self.port)]
        argv += ["--data-dir", str(self.data_dir)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.exit_code = None
        self.pid = self.forks.start(argv, env, self.log)

    @property
    def log(self) -> Path:
        """Where every start's output goes (appended)."""
        return self.data_dir / "serve.log"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no serve.log)"

    def returncode(self) -> int | None:
        """None while the process runs; once it has ended, its exit code (kept: a process is
        reaped once, and its pid may belong to another process afterwards)."""
        if self.pid is not None:
            code = self.forks.returncode(self.pid)
            if code is not None:
                self.pid, self.exit_code = None, code
            return code
        return self.exit_code

    async def wait_up(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                code = self.returncode()
                if code is not None:
                    raise RuntimeError(f"taskhold serve exited with {code} while starting")
                try:
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"taskhold serve did not come up in {timeout_s:.0f} s")

    async def balances(self) -> dict[str, int]:
        """The simulated nodes' balances (msat), by node name."""
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.url}/v1/sim/wallets")
        if response.status_code != 200:
            raise httpx.TransportError(f"wallets answered {response.status_code}")
        return dict(response.json()["balances_msat"])

    async def stop(self) -> None:
        """SIGTERM, and wait for a clean exit (SIGKILL after 30 s); then the ports are let go.
        No process is left running, whatever happened before."""
        try:
            for number, timeout_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 300.0)):
                if self.returncode() is not None or self.pid is None:
                    return
                self.forks.signal(self.pid, number)
                await self._exited(timeout_s)
            if self.returncode() is not None or self.pid is None:
                return  # SIGKILL did it
            raise RuntimeError(f"taskhold serve (pid {self.pid}) outlived SIGKILL")
        finally:
            self.release_ports()

    async def _exited(self, timeout_s: float) -> None:
        for _ in range(int(timeout_s / 0.05)):
            if self.returncode() is not None:
                return
            await asyncio.sleep(0.05)

    def release_ports(self) -> None:
        """Lets the held ports go: the end of this serve."""
        for sock in self._ports:
            sock.close()

    async def survive(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run one client step; if the server died at the crash point meanwhile, restart it
        (without the crash) and run the step again. Writes carry idempotency keys, so a step
        whose first answer was lost is answered again, not done twice."""
        transient = 0
        while True:
            try:
                return await step()
            except (httpx.TransportError, TaskholdAPIError) as exc:
                if isinstance(exc, TaskholdAPIError) and exc.status < 500:
                    raise
                await asyncio.sleep(0.1)
                code = self.returncode()
                if code is None:
                    transient += 1
                    if transient > 50:
                        raise RuntimeError(f"taskhold serve keeps failing: {exc}") from exc
                    continue  # a transient error: the server still runs
                if code != -signal.SIGKILL:
                    raise RuntimeError(f"taskhold serve exited with {code}") from exc
                self.kills += 1
                self.start(crash_at=None)
                await self.wait_up()


@dataclass
class Parties:
    """The run's clients and what each task is expected to end as."""

    serve: Serve
    employer: TaskholdClient
    worker: TaskholdClient
    expected: dict[str, str] = field(default_factory=dict)
    """task id -> the final state it must reach."""
    deposit_beneficiary_msat: int = 0
    """Forfeited deposits paid out to the worker during the run."""

    async def call(self, step: Callable[[], Awaitable[T]]) -> T:
        return await self.serve.survive(step)

    async def wait_state(
        self, client: TaskholdClient, task_id: str, states: set[str], timeout_s: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            task = await self.call(lambda: client.get_task(task_id))
            if task["state"] in states:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} stuck in {task['state']}")
            await asyncio.sleep(0.1)

    async def wait_deposit(
        self, client: TaskholdClient, task_id: str, depositor: str, states: set[str]
    ) -> dict[str, Any]:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            task = await self.call(lambda: client.get_task(task_id))
            deposit = [d for d in task["deposits"] if d["depositor"] == depositor][-1]
            if deposit["state"] in states:
                return dict(deposit)
            if time.monotonic() > deadline:
                raise TimeoutError(f"deposit on {task_id} stuck in {deposit['state']}")
            await asyncio.sleep(0.1)

    async def pay(self, payment_request: str, wallet: str = "employer") -> None:
        await self.call(lambda: self.employer.sim_pay(payment_request, wallet=wallet))

    async def invoice(self, amount_msat: int) -> str:
        answer = await self.call(lambda: self.worker.sim_invoice(amount_msat, wallet="worker"))
        return str(answer["payment_request"])


def key() -> str:
    return uuid.uuid4().hex


def unroutable_invoice(amount_msat: int) -> str:
    """A valid regtest invoice from a node nobody can reach: every payment to it fails."""
    tags = bolt11.Tags(
        [
            bolt11.Tag(bolt11.TagChar.payment_hash, secrets.token_hex(32)),
            bolt11.Tag(bolt11.TagChar.description, "unroutable"),
            bolt11.Tag(bolt11.TagChar.payment_secret, secrets.token_hex(32)),
            bolt11.Tag(bolt11.TagChar.expire_time, 86_400),
            bolt11.Tag(bolt11.TagChar.min_final_cltv_expiry, 40),
        ]
    )
    invoice = bolt11.Bolt11(
        currency="bcrt",
        amount_msat=bolt11.MilliSatoshi(amount_msat),
        date=int(time.time()),
        tags=tags,
    )
    return str(bolt11.encode(invoice, secrets.token_hex(32)))


# Scenarios: each drives its tasks to a final state, surviving the crash on the way --------------


async def _funded(p: Parties, client: TaskholdClient, **create: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"deadline_at": int(time.time()) + 3600, "acceptance": ACCEPTANCE}
    args |= create
    create_key, fund_key = key(), key()
    task = await p.call(
        lambda: client.create_task(
            "Crash test", "", AMOUNT_MSAT, idempotency_key=create_key, **args
        )
    )
    task_id = task["task_id"]
    funding = await p.call(lambda: client.request_funding(task_id, idempotency_key=fund_key))
    await p.pay(funding["funding"]["payment_request"])
    return await p.wait_state(client, task_id, {"FUNDED"}, SETTLE_TIMEOUT_S)


async def _submitted(p: Parties, payout_invoice: str | None = None) -> dict[str, Any]:
    task = await _funded(p, p.employer)
    task_id = task["task_id"]
    claim_key, submit_key = key(), key()
    await p.call(lambda: p.worker.claim(task_id, idempotency_key=claim_key))
    invoice = payout_invoice or await p.invoice(task["payout_msat"])
    proof = {"url": "https://example.org/crash"}
    return await p.call(
        lambda: p.worker.submit_proof(task_id, proof, invoice, idempotency_key=submit_key)
    )


async def release(p: Parties) -> None:
    """Create, fund, claim, submit, approve: ends PAID."""
    task = await _submitted(p)
    approve_key = key()
    await p.call(lambda: p.employer.approve(task["task_id"], idempotency_key=approve_key))
    p.expected[task["task_id"]] = "PAID"


async def refund(p: Parties) -> None:
    """Funded, then cancelled by the employer: ends REFUNDED."""
    task = await _funded(p, p.employer)
    cancel_key = key()
    await p.call(
        lambda: p.employer.cancel(task["task_id"], "changed my mind", idempotency_key=cancel_key)
    )
    p.expected[task["task_id"]] = "REFUNDED"


async def payout_retry(p: Parties) -> None:
    """The worker's first invoice cannot be paid; after failed attempts a new one is."""
    task = await _submitted(p, unroutable_invoice(AMOUNT_MSAT - AMOUNT_MSAT // 100))
    task_id = task["task_id"]
    approve_key, update_key = key(), key()
    await p.call(lambda: p.employer.approve(task_id, idempotency_key=approve_key))
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while (await p.call(lambda: p.worker.get_task(task_id)))["payout_failures"] < 1:
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id}: no payout attempt failed")
        await asyncio.sleep(0.1)
    invoice = await p.invoice(task["payout_msat"])
    await p.call(
        lambda: p.worker.update_payout_invoice(task_id, invoice, idempotency_key=update_key)
    )
    p.expected[task_id] = "PAID"


async def _employer_deposit(
    p: Parties, employer: TaskholdClient, review_window_s: int
) -> tuple[str, int]:
    """A stranger employer pledges a deposit, locks it and funds the task; the worker submits."""
    create_key, deposit_key, fund_key = key(), key(), key()
    task = await p.call(
        lambda: employer.create_task(
            "Crash test",
            "",
            AMOUNT_MSAT,
            int(time.time()) + 3600,
            acceptance=ACCEPTANCE,
            review_window_s=review_window_s,
            deposit=True,
            idempotency_key=create_key,
        )
    )
    task_id = task["task_id"]
    deposit = (await p.call(lambda: employer.lock_deposit(task_id, idempotency_key=deposit_key)))[
        "deposit"
    ]
    await p.pay(deposit["payment_request"])
    held = await p.wait_deposit(employer, task_id, employer.pubkey_hex, {"HELD"})
    funding = await p.call(lambda: employer.request_funding(task_id, idempotency_key=fund_key))
    await p.pay(funding["funding"]["payment_request"])
    await p.wait_state(employer, task_id, {"FUNDED"}, SETTLE_TIMEOUT_S)
    claim_key, submit_key = key(), key()
    await p.call(lambda: p.worker.claim(task_id, idempotency_key=claim_key))
    invoice = await p.invoice(task["payout_msat"])
    proof = {"url": "https://example.org/crash"}
    await p.call(lambda: p.worker.submit_proof(task_id, proof, invoice, idempotency_key=submit_key))
    return task_id, int(held["amount_msat"])


def _stranger(p: Parties) -> TaskholdClient:
    return TaskholdClient(p.serve.url, NostrKeys.generate(), retries=0, auto_pow=False)


async def deposit_returned(p: Parties) -> None:
    """The employer answers in time: the task ends PAID and the deposit is returned."""
    employer = _stranger(p)
    try:
        task_id, _ = await _employer_deposit(p, employer, review_window_s=600)
        approve_key = key()
        await p.call(lambda: employer.approve(task_id, idempotency_key=approve_key))
        await p.wait_state(employer, task_id, {"PAID"}, SETTLE_TIMEOUT_S)
        await p.wait_deposit(employer, task_id, employer.pubkey_hex, {"RETURNED"})
    finally:
        await employer.aclose()
    p.expected[task_id] = "PAID"


async def deposit_forfeit(p: Parties, *, first_fails: bool = False) -> None:
    """The employer stays silent: the reward is released and the deposit paid to the worker."""
    employer = _stranger(p)
    try:
        task_id, amount = await _employer_deposit(p, employer, review_window_s=2)
        await p.wait_state(employer, task_id, {"PAID"}, SETTLE_TIMEOUT_S)
        await p.wait_deposit(employer, task_id, employer.pubkey_hex, {"FORFEIT"})
        if first_fails:
            fail_key = key()
            await p.call(
                lambda: p.worker.claim_deposit(
                    task_id,
                    employer.pubkey_hex,
                    unroutable_invoice(amount),
                    idempotency_key=fail_key,
                )
            )
            await _wait_deposit_failure(p, task_id, employer.pubkey_hex)
        invoice = await p.invoice(amount)
        claim_key = key()
        await p.call(
            lambda: p.worker.claim_deposit(
                task_id, employer.pubkey_hex, invoice, idempotency_key=claim_key
            )
        )
        await p.wait_deposit(employer, task_id, employer.pubkey_hex, {"PAID_OUT"})
    finally:
        await employer.aclose()
    p.expected[task_id] = "PAID"
    p.deposit_beneficiary_msat += amount


async def _wait_deposit_failure(p: Parties, task_id: str, depositor: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        task = await p.call(lambda: p.worker.get_task(task_id))
        deposit = [d for d in task["deposits"] if d["depositor"] == depositor][-1]
        if deposit.get("payout_failures", 0) >= 1:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"deposit on {task_id}: no payment attempt failed")
        await asyncio.sleep(0.1)


async def deposit_forfeit_retried(p: Parties) -> None:
    await deposit_forfeit(p, first_fails=True)


async def _wait_failed(p: Parties, task_id: str, failures: Callable[[dict[str, Any]], int]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while failures(await p.call(lambda: p.worker.get_task(task_id))) < 1:
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id}: no share payment failed")
        await asyncio.sleep(0.1)


async def split(p: Parties, *, first_fails: str | None = None) -> None:
    """Rejected, disputed, split 60/40 by the arbiter; each side invoices its share (with
    ``first_fails``, that share's first invoice cannot be paid): ends PAID, each share once."""
    task = await _submitted(p)
    task_id = task["task_id"]
    reject_key, dispute_key, resolve_key = key(), key(), key()
    await p.call(lambda: p.employer.reject(task_id, "half missing", idempotency_key=reject_key))
    await p.call(lambda: p.worker.open_dispute(task_id, "half done", idempotency_key=dispute_key))
    worker_msat = task["payout_msat"] * 60 // 100
    arbiter = TaskholdClient(p.serve.url, ARBITER_KEYS, retries=0)
    try:
        ruled = await p.call(
            lambda: arbiter.resolve_dispute(
                task_id, "split", "60/40", worker_msat=worker_msat, idempotency_key=resolve_key
            )
        )
    finally:
        await arbiter.aclose()
    employer_msat = int(ruled["split"]["employer_msat"])
    payout_key, refund_key = key(), key()
    if first_fails == "worker":
        bad = unroutable_invoice(worker_msat)
        await p.call(lambda: p.worker.update_payout_invoice(task_id, bad, idempotency_key=key()))
        await _wait_failed(p, task_id, lambda t: int(t["payout_failures"]))
    invoice = await p.invoice(worker_msat)
    await p.call(
        lambda: p.worker.update_payout_invoice(task_id, invoice, idempotency_key=payout_key)
    )
    if first_fails == "employer":
        bad = unroutable_invoice(employer_msat)
        await p.call(lambda: p.employer.update_refund_invoice(task_id, bad, idempotency_key=key()))
        await _wait_failed(p, task_id, lambda t: int(t["split"]["refund_failures"]))
    answer = await p.call(lambda: p.employer.sim_invoice(employer_msat, wallet="employer"))
    refund_invoice = str(answer["payment_request"])
    await p.call(
        lambda: p.employer.update_refund_invoice(
            task_id, refund_invoice, idempotency_key=refund_key
        )
    )
    p.expected[task_id] = "PAID"


async def split_worker_retried(p: Parties) -> None:
    await split(p, first_fails="worker")


async def split_employer_retried(p: Parties) -> None:
    await split(p, first_fails="employer")


async def milestones(p: Parties) -> None:
    """A sequential series of two: the first paid opens the second, assigned to the same worker
    and paid too."""
    start = int(time.time())
    plan = [
        {
            "title": f"Crash milestone {n}",
            "amount_msat": AMOUNT_MSAT,
            "deadline_at": start + 3600 * n,
            "acceptance": ACCEPTANCE,
        }
        for n in (1, 2)
    ]
    create_key = key()
    created = await p.call(
        lambda: p.employer.create_milestones(
            plan, funding_mode="sequential", idempotency_key=create_key
        )
    )
    for index, task_id in enumerate(created["series"]["task_ids"]):
        await _milestone_paid(p, task_id, first=index == 0)


async def _milestone_paid(p: Parties, task_id: str, *, first: bool) -> None:
    """Fund one milestone once its invoice is open, do it, approve it, wait for PAID."""
    task = await p.wait_state(p.employer, task_id, {"PENDING_FUNDING"}, SETTLE_TIMEOUT_S)
    await p.pay(task["funding"]["payment_request"])
    if first:  # the later ones are assigned to the first one's worker
        await p.wait_state(p.worker, task_id, {"FUNDED"}, SETTLE_TIMEOUT_S)
        claim_key = key()
        await p.call(lambda: p.worker.claim(task_id, idempotency_key=claim_key))
    await p.wait_state(p.worker, task_id, {"CLAIMED"}, SETTLE_TIMEOUT_S)
    invoice = await p.invoice(task["payout_msat"])
    submit_key, approve_key = key(), key()
    proof = {"url": "https://example.org/crash"}
    await p.call(lambda: p.worker.submit_proof(task_id, proof, invoice, idempotency_key=submit_key))
    await p.call(lambda: p.employer.approve(task_id, idempotency_key=approve_key))
    await p.wait_state(p.employer, task_id, {"PAID"}, SETTLE_TIMEOUT_S)
    p.expected[task_id] = "PAID"


async def renewal(p: Parties) -> None:
    """A task longer than one hold: mined to its renewal, renewed once, then released: ends
    PAID, its first round cancelled and its second settled."""
    task = await _funded(p, p.employer, deadline_at=int(time.time()) + 10 * 86_400)
    task_id = task["task_id"]
    terms = await p.call(p.employer.info)
    target = (
        task["funding"]["accepted_htlc_expiry_height"] - terms["renewal"]["renewal_lead_blocks"]
    )
    height = int((await p.call(p.employer.sim_wallets))["height"])  # a retried mine adds none
    await p.call(lambda: p.employer.sim_mine(max(0, target - height)))
    opened = await _wait_task(p, task_id, lambda t: t["renewal"] is not None)
    await p.pay(opened["renewal"]["payment_request"])
    await _wait_task(
        p, task_id, lambda t: t["funding"]["funding_round"] == opened["renewal"]["funding_round"]
    )
    claim_key, submit_key, approve_key = key(), key(), key()
    await p.call(lambda: p.worker.claim(task_id, idempotency_key=claim_key))
    invoice = await p.invoice(task["payout_msat"])
    proof = {"url": "https://example.org/crash"}
    await p.call(lambda: p.worker.submit_proof(task_id, proof, invoice, idempotency_key=submit_key))
    await p.call(lambda: p.employer.approve(task_id, idempotency_key=approve_key))
    p.expected[task_id] = "PAID"


async def _wait_task(
    p: Parties, task_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        task = await p.call(lambda: p.employer.get_task(task_id))
        if done(task):
            return task
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} stuck in {task['state']} (renewal)")
        await asyncio.sleep(0.1)


Scenario = Callable[[Parties], Awaitable[None]]

SCENARIOS: dict[str, Scenario] = {
    "after_hold_invoice": release,
    "after_htlc_accepted": release,
    "after_payout_row": release,
    "after_payout": release,
    "after_settle": release,
    "after_payout_failure": payout_retry,
    "after_cancel": refund,
    "after_deposit_invoice": deposit_returned,
    "after_deposit_htlc_accepted": deposit_returned,
    "after_deposit_cancel": deposit_returned,
    "after_deposit_payout_row": deposit_forfeit,
    "after_deposit_payout": deposit_forfeit,
    "after_deposit_settle": deposit_forfeit,
    "after_deposit_payout_failure": deposit_forfeit_retried,
    "after_worker_share_row": split,
    "after_worker_share": split,
    "after_worker_share_failure": split_worker_retried,
    "after_employer_share_row": split,
    "after_employer_share": split,
    "after_employer_share_failure": split_employer_retried,
    "after_split_settle": split,
    "after_milestone_invoice": milestones,
    "after_renewal_invoice": renewal,
    "after_renewal_htlc_accepted": renewal,
    "after_round_cancel": renewal,
}
"""The scenario that reaches each crash point."""

assert SCENARIOS.keys() == CRASH_POINTS.keys(), "every crash point needs a scenario"


# One run and its checks -----------------------------------------------------------------------


@dataclass
class Outcome:
    """One run of one crash point: what the checks found (empty lists: converged)."""

    point: str
    crashed: bool
    double_payouts: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.crashed and not (self.double_payouts or self.stuck or self.gaps)


async def run_point(
    forks: Launcher,
    point: str,
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    before_checks: Callable[[], object] | None = None,
) -> Outcome:
    """Crash ``serve`` once at ``point`` while its scenario runs; restart; check convergence.
    ``before_checks`` runs once the tasks are final (e.g. to bring a stopped relay back)."""
    started = time.monotonic()
    serve = Serve(forks, data_dir, extra_env or {})
    serve.start(crash_at=point)
    employer = TaskholdClient(serve.url, NostrKeys.generate(), retries=0)
    worker = TaskholdClient(serve.url, NostrKeys.generate(), retries=0)
    parties = Parties(serve, employer, worker)
    outcome = Outcome(point=point, crashed=False)
    try:
        await serve.wait_up()
        before = await parties.call(serve.balances)
        try:
            await SCENARIOS[point](parties)
            for task_id, state in parties.expected.items():
                await parties.wait_state(employer, task_id, {state}, SETTLE_TIMEOUT_S)
        except TimeoutError as exc:
            outcome.stuck.append(str(exc))
        outcome.crashed = serve.kills == 1
        if before_checks is not None:
            before_checks()
        outcome.gaps += await log_gaps(parties)
        after = await parties.call(serve.balances)
        outcome.double_payouts += await _money_adds_up(parties, before, after)
    except Exception as exc:
        exc.add_note(f"--- {serve.log} (end) ---\n{serve.log_tail()}")
        raise
    finally:
        await serve.stop()
        await employer.aclose()
        await worker.aclose()
    outcome.stuck += await _open_holds(data_dir)
    outcome.seconds = time.monotonic() - started
    return outcome


async def _money_adds_up(p: Parties, before: dict[str, int], after: dict[str, int]) -> list[str]:
    problems: list[str] = []
    paid_out = 0
    for task_id in p.expected:
        task = await p.call(lambda task_id=task_id: p.employer.get_task(task_id))
        if task["state"] == "PAID":
            paid_out += int(task["payout_msat"])
    expected_worker = paid_out + p.deposit_beneficiary_msat
    worker_got = after["worker"] - before["worker"]
    if worker_got != expected_worker:
        problems.append(f"worker received {worker_got} msat, expected {expected_worker}")
    if sum(after.values()) != sum(before.values()):
        problems.append(f"money appeared or vanished: {before} -> {after}")
    return problems


async def log_gaps(p: Parties) -> list[str]:
    """Every log entry the database has is on the relay, gap-free, and passes the auditor."""
    operator = (await p.call(p.employer.info))["operator_pubkey"]
    entries_in_db = await _db_log_count(p.serve)
    kinds = AuditKinds(3910, 3911, 3912, 30402, 30078)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        fetched = await fetch_log(
            [_relay_url(p)], operator, kinds=kinds, settings=FetchSettings(timeout_s=5)
        )
        gseqs = sorted(_gseq(e) for e in fetched.entries)
        if len(gseqs) >= entries_in_db or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    problems = []
    if gseqs != list(range(entries_in_db)):
        missing = sorted(set(range(entries_in_db)) - set(gseqs))
        problems.append(f"relay has {len(gseqs)} of {entries_in_db} entries; missing {missing}")
    result = audit_log(
        fetched.entries,
        operator,
        kinds=kinds,
        checkpoints=fetched.checkpoints,
        deletions=fetched.deletions,
    )
    problems += [f"audit: {finding}" for finding in result.findings]
    return problems


def _relay_url(p: Parties) -> str:
    configured = p.serve.env.get("TASKHOLD_RELAYS")
    return configured or f"ws://127.0.0.1:{p.serve.env['TASKHOLD_EMBEDDED_RELAY_PORT']}"


def _gseq(event: dict[str, Any]) -> int:
    return int(next(t[1] for t in event["tags"] if t[0] == "o"))


async def _db_log_count(serve: Serve) -> int:
    """How many log entries the server's database holds (all of them must reach the relay)."""
    url = serve.env.get("TASKHOLD_DATABASE_URL")
    url = url or f"sqlite+aiosqlite:///{serve.data_dir / 'taskhold.sqlite3'}"
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            count = (await conn.execute(text("select count(*) from log_entries"))).scalar_one()
    finally:
        await engine.dispose()
    return int(count)


async def _open_holds(data_dir: Path) -> list[str]:
    """Hold invoices of the escrow node still open or held once the server has stopped."""
    world = SimWorld.open(data_dir / SIM_STATE_FILE)
    found = []
    for (issuer, payment_hash), invoice in world.network._invoices.items():
        if issuer != world.escrow.pubkey_hex or not invoice.hold:
            continue
        if invoice.state not in (InvoiceState.SETTLED, InvoiceState.CANCELED):
            found.append(f"hold invoice {payment_hash.hex()[:16]} left {invoice.state.value}")
    return found
