"""``taskhold demo``: one task driven over HTTP from creation to PAID (or to REFUNDED).

It starts a server on the embedded defaults, makes fresh employer and worker keys, and plays
both parties with the Python client, so every step is the same signed request a real client
would send. The simulator's wallet routes stand in for the employer's and worker's wallets.

Each scenario shows one capability: ``paid`` (the default), ``refund`` (the employer cancels a
funded task), ``hostile-payout`` (the worker first offers a bait payout invoice of the escrow
node itself, which is refused; the operator's balance grows by exactly its fee), ``squatter``
(a stranger claims and goes quiet; once the claim timeout passes the employer revokes the claim,
the hold stays, and a second worker is paid), ``split`` (the employer rejects, the worker
disputes, the demo's arbiter splits the amount 60/40: the worker's share and the employer's are
paid to their own invoices, then the hold is settled; the figures are measured from both
wallets), ``reject-overturned`` (the employer rejects the work, the worker disputes, the demo's
arbiter rules for the worker, who is paid) and ``cooperative-cancel`` (after the claim both
parties sign a cancel; the hold invoice is cancelled at once and the employer is whole) and
``milestones`` (a series of three milestones funded sequentially, each longer than one hold:
each hold invoice is issued once the milestone before is PAID, the first one's worker is
assigned the later ones, each is renewed once as blocks are mined on the simulator, and each is
paid, then its last round settled, on its own; simulator only).
``renewal`` (a ten-day task outlasts one hold: blocks are mined to each hold's renewal lead,
the employer pays two renewals, each previous round is cancelled, and the third is settled).
``private`` (a private task: a random ``secret_marker`` is put in its description and in the
proof, both sent NIP-44 sealed; the log and the relay carry only their hashes, the worker reads
the details from the operator's copy, and the employer reads the proof from its own; the
worker's payout invoice goes sealed to the operator alone, and the log proves the payout by
its signed hash; the JSON names the invoice, as ``secret_marker``, so it can be searched for).
``onchain`` (devnet only: the employer funds the hold invoice from its on-chain wallet by a
submarine swap and the worker takes the reward to an on-chain address by a reverse swap, at the
devnet's swap server; each keeps its own swap keys; the JSON gives ``funding_lockup_txid``,
``payout_claim_txid`` and both preimages).
``pool`` (devnet only, started with ``taskhold devnet up --escrow-nodes 2``: taskhold runs on a
pool of the escrow nodes (``lnd_pool``); first the employer pays the roomier node until both have
about the same inbound room, since the pool places each hold invoice on the node with the most,
then four tasks are funded, each placed on one node for life, and all four are paid, each from
its own node; the JSON gives ``tasks_per_node`` and ``final_states``).
``paused-intake`` (the operator pauses intake, as ``taskhold admin pause`` does, while a
funded task is claimed: a new task is refused with ``503 intake_paused`` and ``Retry-After``,
the claimed one is still proven, approved and paid, and after the resume a new task is taken;
the JSON gives ``refused_code`` and ``retry_after_s``).
``moderation`` (the operator blocks the worker's key and delists the task, as ``taskhold
moderate`` does, after the worker has submitted its proof: the blocked key's new writes are
refused with ``403 blocked_key`` and the task leaves the board, yet the employer's approval
still pays the worker, since a block never locks money a task owes; the JSON gives
``refused_code``, ``listed_before`` and ``listed_after``).
``jurisdiction`` (the operator blocks a network, ``TASKHOLD_BLOCKED_NETWORKS``, and publishes it
in its terms; the demo's clients arrive through a proxy on loopback that the server trusts and
say where they are in ``X-Forwarded-For``: a worker from the blocked range is refused with
``451 blocked_jurisdiction``, one from an open range claims the task and is paid; the JSON gives
``blocked_networks``, ``refused_status`` and ``refused_code``).
``task-cli`` (simulator only: the participants' command line, ``taskhold task``, plays both
parties, each with a key file made by ``keygen``, each command a process of its own as a person
would run it: create, fund ``--wallet sim``, claim, proof, approve until PAID; the JSON gives
``commands``, the command lines run, key files shown by name only).

The demo configures one arbiter key of its own and says so: a rejection then has someone to
rule on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
from rich.console import Console
from sqlalchemy import select

from taskhold.admin.controls import set_intake
from taskhold.audit import AuditKinds, AuditResult, audit_log
from taskhold.boltz import statuses
from taskhold.boltz.api import BoltzApi
from taskhold.boltz.records import SwapRecords
from taskhold.boltz.ws import wait_for_status
from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.devnet import control as devnet_control
from taskhold.keys.admin import init_key_store
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.moderation import Moderator
from taskhold.nostr import NostrKeys
from taskhold.onchain.funding import fund_by_swap
from taskhold.onchain.payout import claim_payout, start_payout_swap
from taskhold.server import free_port, running_server
from taskhold.services import Services, build_services
from taskhold.settings import Settings
from taskhold.store import Store
from taskhold.store.models import LogEntryRow
from taskhold.swaps.tree import Network

__all__ = ["SCENARIOS", "SIM_ONLY_SCENARIOS", "DemoError", "audit_stored_log", "run_demo"]

DEMO_AMOUNT_MSAT = 150_000_000
PUBLISH_TIMEOUT_S = 30.0
SCENARIOS = (
    "paid",
    "refund",
    "hostile-payout",
    "squatter",
    "split",
    "reject-overturned",
    "cooperative-cancel",
    "milestones",
    "renewal",
    "private",
    "onchain",
    "pool",
    "paused-intake",
    "moderation",
    "jurisdiction",
    "task-cli",
)
SPLIT_WORKER_PERCENT = 60
SIM_ONLY_SCENARIOS = frozenset({"hostile-payout", "renewal", "milestones", "task-cli"})
"""Scenarios that read the simulated nodes' balances or mine blocks through the simulator's
route (``renewal``, ``milestones``: each hold is renewed), or pay with its wallets from the
command line (``task-cli``: ``--wallet sim``), which a devnet run has no route for."""
DEVNET_ONLY_SCENARIOS = frozenset({"onchain", "pool"})
"""Scenarios with real on-chain transactions (the devnet's btcd and its swap server), or with
several real escrow nodes."""
LND_ESCROW_SCENARIOS = frozenset({"onchain", "pool"})
"""Scenarios the devnet's LDK escrow cannot run: the swap server's node has its channel to the
lnd escrow only, and the pool is of lnd nodes."""
POOL_TASKS = 4
"""The pool scenario's tasks, placed over the escrow nodes."""
NETWORK_NAMES = {
    "sim": "Lightning simulator",
    "lnd": "regtest lnd devnet",
    "ldk": "regtest devnet, escrow on embedded LDK Node",
}
ONCHAIN_MAX_FEE_SAT = 10_000
"""What the demo's employer and worker each accept to pay a swap (swap and miner fees)."""
BLOCKED_RANGE = "203.0.113.0/24"
"""The ``jurisdiction`` scenario's blocked network (TEST-NET-3, documentation addresses)."""
BLOCKED_CLIENT = "203.0.113.7"
"""Where the scenario's far worker says it is, through the loopback proxy the server trusts."""
DEMO_OPERATOR = "admin:demo"
"""The journal's actor for the ``paused-intake`` and ``moderation`` scenarios' actions."""
BAIT_CODES = frozenset({"payout_to_escrow_node", "hash_reused"})
MILESTONES = 3
MILESTONE_AMOUNT_MSAT = DEMO_AMOUNT_MSAT // MILESTONES
RENEWAL_DEMO_DEADLINE_S = 10 * 86_400
RENEWAL_DEMO_ROUNDS = 3
"""The renewal scenario's task spans several hold windows; it is renewed twice."""
MILESTONE_DEMO_SPACING_S = 3 * 86_400
"""Three days between the milestones' deadlines: each outlasts one hold and is renewed once."""
SQUATTER_CLAIM_TIMEOUT_S = 3
"""The squatter scenario's claim timeout: short, so the demo need not wait for hours."""


class DemoError(Exception):
    """The demo could not finish; the message says why."""


class Wallets(Protocol):
    """The employer's and the worker's own wallets: taskhold never holds either."""

    async def pay(self, payment_request: str) -> None: ...

    async def invoice(self, amount_msat: int) -> str: ...

    async def employer_invoice(self, amount_msat: int) -> str: ...

    async def balances_msat(self) -> dict[str, int]:
        """The employer's and the worker's balances (msat), as their own nodes report them."""
        ...

    async def close(self) -> None: ...


class SimWallets:
    """The simulator's wallet routes, reached over HTTP like any client would."""

    def __init__(self, client: TaskholdClient) -> None:
        self._client = client

    async def pay(self, payment_request: str) -> None:
        await self._client.sim_pay(payment_request, wallet="employer")

    async def invoice(self, amount_msat: int) -> str:
        answer = await self._client.sim_invoice(amount_msat, wallet="worker")
        return str(answer["payment_request"])

    async def employer_invoice(self, amount_msat: int) -> str:
        answer = await self._client.sim_invoice(amount_msat, wallet="employer")
        return str(answer["payment_request"])

    async def balances_msat(self) -> dict[str, int]:
        balances = (await self._client.sim_wallets())["balances_msat"]
        return {"employer": int(balances["employer"]), "worker": int(balances["worker"])}

    async def close(self) -> None:
        return None


class DevnetWallets:
    """The employer's and the worker's lnd nodes on the regtest devnet."""

    def __init__(self, connection_file: Path) -> None:
        self._employer = LndWallet.from_connection_file(connection_file, "employer")
        self._worker = LndWallet.from_connection_file(connection_file, "worker")

    async def pay(self, payment_request: str) -> None:
        result = await self._employer.send_payment(payment_request)
        if result.status.value == "FAILED":
            raise DemoError(f"the employer's node could not pay: {result.failure_reason}")

    async def invoice(self, amount_msat: int) -> str:
        return (
            await self._worker.create_invoice(amount_msat, expiry_seconds=86_400)
        ).payment_request

    async def employer_invoice(self, amount_msat: int) -> str:
        return (
            await self._employer.create_invoice(amount_msat, expiry_seconds=86_400)
        ).payment_request

    async def balances_msat(self) -> dict[str, int]:
        """Read once nothing is in flight and the figures stopped moving (lnd updates them a
        moment after a payment settles)."""
        previous: dict[str, int] | None = None
        for _ in range(50):
            employer = await self._employer.channel_balance()
            worker = await self._worker.channel_balance()
            now = {"employer": employer.local_msat, "worker": worker.local_msat}
            idle = employer.unsettled_local_msat == worker.unsettled_local_msat == 0
            if idle and now == previous:
                return now
            previous = now
            await asyncio.sleep(0.2)
        raise DemoError("the employer's and worker's balances did not settle")

    async def close(self) -> None:
        await self._employer.close()
        await self._worker.close()


async def run_demo(
    data_dir: Path,
    *,
    scenario: str = "paid",
    as_json: bool,
    console: Console,
    relays: list[str] | None = None,
    keystore: str = "file",
    devnet_dir: Path | None = None,
) -> dict[str, Any]:
    """The demo on the simulator, or with ``devnet_dir`` on the running regtest devnet."""
    connection_file = None if devnet_dir is None else devnet_dir / "devnet.json"
    if scenario not in SCENARIOS:
        raise DemoError(f"unknown scenario {scenario!r}: use one of {', '.join(SCENARIOS)}")
    if connection_file is not None and scenario in SIM_ONLY_SCENARIOS:
        raise DemoError(f"the {scenario} scenario runs on the simulator only")
    if connection_file is None and scenario in DEVNET_ONLY_SCENARIOS:
        raise DemoError(f"the {scenario} scenario runs on the devnet only (--lightning devnet)")
    if connection_file is not None and not connection_file.exists():
        raise DemoError(f"no devnet at {devnet_dir}: run `taskhold devnet up` first")
    escrow_backend = "sim" if connection_file is None else devnet_escrow(connection_file)
    if escrow_backend == "ldk" and scenario in LND_ESCROW_SCENARIOS:
        raise DemoError(
            f"the {scenario} scenario needs the lnd escrow (the swap server's channel ends"
            " there); run it on a devnet started with `taskhold devnet up --escrow lnd`"
        )
    pool = _pool_nodes(connection_file) if scenario == "pool" and connection_file else []
    arbiter_keys = NostrKeys.generate()
    settings = Settings(
        data_dir=data_dir,
        keystore=keystore,
        lightning=escrow_backend,
        lnd_connection_file=connection_file,
        lnd_pool=pool,
        sim_routes_enabled=connection_file is None,
        engine_tick_s=0.2,
        default_review_window_s=3600,
        default_dispute_window_s=3600,
        relays=relays or [],
        arbiters=[arbiter_keys.pubkey_hex],
        swap_api_url=_offered_swap_api(connection_file)
        if connection_file and escrow_backend == "lnd"
        else None,
    )
    if scenario == "jurisdiction":  # the demo's clients arrive through a proxy on loopback
        settings.blocked_networks = [BLOCKED_RANGE]
        settings.trusted_proxies = ["127.0.0.1"]
    say: Callable[[str], None] = (lambda _: None) if as_json else console.print
    arbiter_keys = NostrKeys.generate()  # the demo's arbiter: rules the split scenario's dispute
    settings.arbiters = [arbiter_keys.pubkey_hex]
    if keystore == "pkcs11":  # a SoftHSM2 token under the data directory unless configured
        init_key_store(settings)
    services = await build_services(settings, embedded_relay=True)
    try:
        port = free_port(settings.host)
        async with running_server(services, settings.host, port) as url:
            network = NETWORK_NAMES[escrow_backend]
            say(f"[bold]taskhold[/] serving at {url} (SQLite + {network}, data in {data_dir})")
            say(_relay_line(services))
            say(
                f"arbiter {arbiter_keys.pubkey_hex[:16]}… configured (the demo's own key);"
                f" rejection policy {settings.rejection_policy}"
            )
            if pool:
                assert connection_file is not None
                await _even_out_pool(services, connection_file, say)
            result = await _drive(
                url,
                arbiter_keys,
                store=services.store,
                scenario=scenario,
                say=say,
                console=console,
                quiet=as_json,
                connection_file=connection_file,
                data_dir=data_dir,
                moderator=Moderator(
                    services.store, services.signer, services.audit, settings.kind_checkpoint
                )
                if scenario == "moderation" and services.audit is not None
                else None,
            )
            if pool:
                result["tasks_per_node"] = await _tasks_per_node(services, result)
                say(f"   tasks per escrow node: {result['tasks_per_node']}")
            log_ids = await _log_event_ids(services, result["task_id"])
            await _wait_published(services, await _log_event_ids(services, None))
            say(f"   {len(log_ids)} signed log entries published to {services.settings.relays[0]}")
            # Every payout the log records paid reveals the preimage of an invoice hash its
            # payee signed, for the amount owed.
            payout_proven = (await audit_stored_log(services)).summary.payout_proven
            say(f"   every payout proven by its payee's signed hash and preimage: {payout_proven}")
        return result | {
            "payout_proven": payout_proven,
            "scenario": scenario,
            "escrow_backend": escrow_backend,
            "operator_pubkey": services.signer.get_public_key(),
            "relay_url": services.settings.relays[0],
            "log_event_ids": log_ids,
        }
    finally:
        await services.close()


def _pool_nodes(connection_file: Path) -> list[str]:
    """The devnet's escrow nodes, for ``lnd_pool``; a devnet with one is refused."""
    nodes = list(json.loads(connection_file.read_text()).get("escrow_nodes") or ["escrow"])
    if len(nodes) < 2:
        raise DemoError(
            "the pool scenario needs a devnet with two escrow nodes: run"
            " `taskhold devnet up --escrow-nodes 2` first"
        )
    return nodes


async def _even_out_pool(
    services: Services, connection_file: Path, say: Callable[[str], None]
) -> None:
    """The employer pays the roomier node ordinary invoices until the nodes' inbound room is
    within half a task: the devnet gives the first node one channel more, and the pool places
    each hold on the node with the most room, so otherwise all four would land on one node."""
    members = getattr(services.lightning, "members", ())
    employer = LndWallet.from_connection_file(connection_file, "employer")
    try:
        for _ in range(10):
            rooms = {m.name: (await m.backend.capacity()).inbound_msat for m in members}
            roomier = max(rooms, key=lambda name: rooms[name])
            gap = rooms[roomier] - min(rooms.values())
            if gap <= DEMO_AMOUNT_MSAT:
                return
            amount = min(gap - DEMO_AMOUNT_MSAT // 2, 4_000_000_000)  # one HTLC's most
            say(f"   evening out the pool: the employer pays {roomier} {amount} msat")
            # The devnet acting as a payer of the escrow node: its admin macaroon, since the one
            # taskhold runs with cannot make an ordinary invoice.
            node = LndWallet.from_connection_file(connection_file, roomier, admin=True)
            try:
                invoice = await node.create_invoice(amount)
            finally:
                await node.close()
            paid = await employer.send_payment(invoice.payment_request)
            if paid.status.value == "FAILED":
                raise DemoError(f"the employer could not pay {roomier}: {paid.failure_reason}")
            member = next(m.backend for m in members if m.name == roomier)
            for _ in range(100):
                if (await member.capacity()).inbound_msat <= rooms[roomier] - amount:
                    break
                await asyncio.sleep(0.2)
    finally:
        await employer.close()
    raise DemoError("the pool's escrow nodes' inbound room did not even out")


async def _tasks_per_node(services: Services, result: dict[str, Any]) -> dict[str, int]:
    """How many of the pool scenario's tasks each escrow node held (their placements)."""
    member_of = services.lightning.member_of  # type: ignore[attr-defined]
    counts = {m.name: 0 for m in services.lightning.members}  # type: ignore[attr-defined]
    for payment_hash in result["payment_hashes"]:
        counts[await member_of(bytes.fromhex(payment_hash))] += 1
    return counts


def _relay_line(services: Services) -> str:
    relays = ", ".join(services.settings.relays)
    if services.embedded_relay is not None:
        return f"public log on the embedded relay {relays}"
    return f"public log to {relays}"


async def _log_event_ids(services: Services, task_id: str | None) -> list[str]:
    """The task's log entries in order; with None, every entry (all must reach the relay for
    an auditor to find no gap)."""
    stmt = select(LogEntryRow.event_id)
    if task_id is not None:
        stmt = stmt.where(LogEntryRow.task_id == task_id)
    async with services.store.transaction() as tx:
        return list((await tx.session.execute(stmt.order_by(LogEntryRow.seq))).scalars())


async def audit_stored_log(services: Services) -> AuditResult:
    """The independent auditor over every entry the operator's database holds (its kinds from
    the settings): what the relays would serve once everything is published."""
    async with services.store.transaction() as tx:
        stmt = select(LogEntryRow.raw).order_by(LogEntryRow.gseq)
        entries = list((await tx.session.execute(stmt)).scalars())
    settings = services.settings
    kinds = AuditKinds(
        settings.kind_log_entry,
        settings.kind_proof,
        settings.kind_request,
        settings.kind_listing,
        settings.kind_checkpoint,
    )
    return audit_log(entries, services.signer.get_public_key(), kinds=kinds)


async def _wait_published(services: Services, event_ids: list[str]) -> None:
    assert services.publisher is not None  # the demo always has a relay
    try:
        await services.publisher.wait_until_published(event_ids, timeout_s=PUBLISH_TIMEOUT_S)
    except TimeoutError as exc:
        raise DemoError(
            f"the log entries did not reach {', '.join(services.settings.relays)} "
            f"within {PUBLISH_TIMEOUT_S:.0f} s ({exc})"
        ) from None


async def _drive(
    url: str,
    arbiter_keys: NostrKeys,
    *,
    store: Store,
    scenario: str,
    say: Callable[[str], None],
    console: Console,
    quiet: bool,
    connection_file: Path | None,
    data_dir: Path,
    moderator: Moderator | None = None,
) -> dict[str, Any]:
    employer_keys, worker_keys = NostrKeys.generate(), NostrKeys.generate()
    async with (
        TaskholdClient(url, employer_keys) as employer,
        TaskholdClient(url, worker_keys) as worker,
        TaskholdClient(url, arbiter_keys) as arbiter,
    ):
        wallets: Wallets = (
            SimWallets(employer) if connection_file is None else DevnetWallets(connection_file)
        )
        try:
            play = Play(employer, worker, wallets, say, console, quiet)
            if scenario == "hostile-payout":
                return await play.hostile_payout()
            if scenario == "squatter":
                async with TaskholdClient(url, NostrKeys.generate()) as squatter:
                    return await play.squatter(squatter)
            if scenario == "split":
                return await play.split(arbiter)
            if scenario == "reject-overturned":
                return await play.reject_overturned(arbiter)
            if scenario == "cooperative-cancel":
                return await play.cooperative_cancel()
            if scenario == "milestones":
                return await play.milestones()
            if scenario == "renewal":
                return await play.renewal()
            if scenario == "private":
                return await play.private()
            if scenario == "onchain":
                assert connection_file is not None
                return await play.onchain(connection_file, data_dir)
            if scenario == "pool":
                return await play.pool()
            if scenario == "paused-intake":
                return await play.paused_intake(store)
            if scenario == "moderation":
                assert moderator is not None
                return await play.moderation(moderator)
            if scenario == "jurisdiction":
                return await play.jurisdiction(url)
            if scenario == "task-cli":
                return await play.task_cli(data_dir / "participants")
            return await play.run(refund=scenario == "refund")
        finally:
            await wallets.close()


class Play:
    """The employer and the worker playing one scenario against the server."""

    def __init__(
        self,
        employer: TaskholdClient,
        worker: TaskholdClient,
        wallets: Wallets,
        say: Callable[[str], None],
        console: Console,
        quiet: bool,
    ) -> None:
        self.employer, self.worker, self.wallets = employer, worker, wallets
        self.say, self.console, self.quiet = say, console, quiet

    async def wait(self, task_id: str, state: str, what: str) -> dict[str, Any]:
        return await _wait(self.employer, task_id, {state}, self.console, self.quiet, what)

    async def create(
        self, amount_msat: int = DEMO_AMOUNT_MSAT, claim_timeout_s: int | None = None
    ) -> dict[str, Any]:
        return await self.employer.create_task(
            "Translate the README to German",
            "Put the translation at a public URL and submit it.",
            amount_msat,
            int(time.time()) + 3600,
            acceptance={"required_fields": ["url"], "url_fields": ["url"]},
            claim_timeout_s=claim_timeout_s,
        )

    async def fund(
        self, claim_timeout_s: int | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Steps 1-3: a new task, its hold invoice, the employer's payment held."""
        say = self.say
        say(f"employer {self.employer.pubkey_hex[:16]}…  worker {self.worker.pubkey_hex[:16]}…")
        task = await self.create(claim_timeout_s=claim_timeout_s)
        task_id = task["task_id"]
        say(f"1. created task {task_id[:16]}… for {DEMO_AMOUNT_MSAT} msat → {task['state']}")
        funding = (await self.employer.request_funding(task_id))["funding"]
        invoice, cltv = funding["payment_request"], funding["cltv_expiry_delta"]
        say(f"2. hold invoice {invoice[:40]}… (cltv_expiry {cltv} blocks)")
        await self.wallets.pay(funding["payment_request"])
        task = await self.wait(task_id, "FUNDED", "waiting for the HTLC")
        say(f"3. employer's payment is held by the escrow node → {task['state']}")
        return task, funding

    async def submit(self, task_id: str, payout_invoice: str) -> dict[str, Any]:
        return await self.worker.submit_proof(
            task_id, {"url": "https://example.org/README.de.md"}, payout_invoice
        )

    async def pay_out(self, task: dict[str, Any], step: int) -> dict[str, Any]:
        """The worker's honest invoice, the employer's approval, and the payout."""
        task_id, say = task["task_id"], self.say
        task = await self.submit(task_id, await self.wallets.invoice(task["payout_msat"]))
        say(f"{step}. worker submits a signed proof and a payout invoice → {task['state']}")
        task = await self.employer.approve(task_id)
        say(f"{step + 1}. employer approves → {task['state']}")
        task = await self.wait(task_id, "PAID", "paying the worker")
        say(
            f"{step + 2}. worker paid {task['payout_msat']} msat, hold invoice settled"
            f" → {task['state']}"
        )
        return task

    async def run(self, *, refund: bool) -> dict[str, Any]:
        """``paid``, or with ``refund`` the employer cancelling the funded task."""
        task, funding = await self.fund()
        task_id = task["task_id"]
        if refund:
            await self.employer.cancel(task_id, reason="changed my mind")
            self.say("4. employer cancels the funded task")
            task = await self.wait(task_id, "REFUNDED", "refunding")
            self.say(f"5. hold invoice cancelled, the HTLC went back → {task['state']}")
        else:
            task = await self.worker.claim(task_id)
            self.say(f"4. worker claims it → {task['state']}")
            task = await self.pay_out(task, 5)
        return self.summary(task, funding)

    async def hostile_payout(self) -> dict[str, Any]:
        """A worker asks to be paid with a bait invoice: an unpaid hold invoice of another
        task, whose payee is the escrow node itself. Paying it would move the operator's own
        liquidity in a circle; taskhold refuses it, then pays the worker's honest invoice."""
        sim = self.employer
        before = (await sim.sim_wallets())["balances_msat"]
        task, funding = await self.fund()
        task_id = task["task_id"]
        task = await self.worker.claim(task_id)
        self.say(f"4. worker claims it → {task['state']}")
        bait_task = await self.create(task["payout_msat"])
        bait = (await self.employer.request_funding(bait_task["task_id"]))["funding"]
        self.say(f"5. a second task's hold invoice, unpaid: {bait['payment_request'][:40]}…")
        try:
            await self.submit(task_id, bait["payment_request"])
        except TaskholdAPIError as exc:
            if exc.status != 422 or exc.code not in BAIT_CODES:
                raise DemoError(f"the bait invoice was refused for another reason: {exc}") from None
            refused_code = exc.code
        else:
            raise DemoError("taskhold accepted a payout invoice of the escrow node itself")
        self.say(f"6. worker submits it as the payout invoice → refused ({refused_code})")
        await self.employer.cancel(bait_task["task_id"], reason="only a bait")
        task = await self.pay_out(task, 7)
        after = (await sim.sim_wallets())["balances_msat"]
        change = after["escrow"] - before["escrow"]
        self.say(f"   escrow node balance {change:+} msat (the operator fee is {task['fee_msat']})")
        return self.summary(task, funding) | {
            "refused_code": refused_code,
            "operator_balance_change_msat": change,
            "worker_paid_msat": after["worker"] - before["worker"],
            "employer_paid_msat": before["employer"] - after["employer"],
        }

    async def squatter(self, squatter: TaskholdClient) -> dict[str, Any]:
        """A stranger claims the task and sends nothing. The claim timeout passes, the employer
        revokes the claim (the hold stays held, nothing is refunded), the squatter may not claim
        again, and a second worker claims and is paid."""
        task, funding = await self.fund(claim_timeout_s=SQUATTER_CLAIM_TIMEOUT_S)
        task_id, say = task["task_id"], self.say
        task = await squatter.claim(task_id)
        say(
            f"4. a squatter {squatter.pubkey_hex[:16]}… claims it and goes quiet → {task['state']}"
            f" (claim timeout {task['claim_timeout_s']} s)"
        )
        task = await self._revoke_once_due(task_id)
        say(f"5. the timeout passes without a proof; employer revokes the claim → {task['state']}")
        try:
            await squatter.claim(task_id)
        except TaskholdAPIError as exc:
            if exc.code != "barred_worker":
                raise DemoError(f"the squatter's second claim was refused oddly: {exc}") from None
        else:
            raise DemoError("taskhold let a revoked squatter claim the task again")
        say("6. the squatter tries to claim again → refused (barred_worker)")
        task = await self.worker.claim(task_id)
        say(f"7. a second worker claims it → {task['state']}")
        task = await self.pay_out(task, 8)
        return self.summary(task, funding) | {
            "revoked_worker_pubkey": squatter.pubkey_hex,
            "paid_worker_pubkey": task["worker_pubkey"],
        }

    async def _revoke_once_due(self, task_id: str) -> dict[str, Any]:
        """Revoke as soon as the server's clock passed the claim timeout."""
        for _ in range(30):
            await asyncio.sleep(SQUATTER_CLAIM_TIMEOUT_S)
            try:
                return await self.employer.revoke(task_id, "no proof within the claim timeout")
            except TaskholdAPIError as exc:
                if exc.code != "claim_timeout_running":
                    raise
        raise DemoError("the claim timeout never passed on the server")

    async def split(self, arbiter: TaskholdClient) -> dict[str, Any]:
        """The employer rejects, the worker disputes, the arbiter splits 60/40; each side sends
        an invoice for its own share. What each received is read from their wallets."""
        before = await self.wallets.balances_msat()
        task, funding = await self.fund()
        task_id, say = task["task_id"], self.say
        await self.worker.claim(task_id)
        task = await self.submit(task_id, await self.wallets.invoice(task["payout_msat"]))
        say(f"4. worker claims it and submits a proof → {task['state']}")
        await self.employer.reject(task_id, "only half of the README is translated")
        await self.worker.open_dispute(task_id, "the other half is in the second file")
        say("5. employer rejects with a reason, worker disputes → DISPUTED")
        worker_msat = task["payout_msat"] * SPLIT_WORKER_PERCENT // 100
        task = await arbiter.resolve_dispute(
            task_id, "split", "half the work, more than half the effort", worker_msat=worker_msat
        )
        split = task["split"]
        say(
            f"6. arbiter splits it: {split['worker_msat']} msat to the worker,"
            f" {split['employer_msat']} back to the employer, fee {task['fee_msat']}"
        )
        await self.worker.update_payout_invoice(task_id, await self.wallets.invoice(worker_msat))
        refund_invoice = await self.wallets.employer_invoice(split["employer_msat"])
        await self.employer.update_refund_invoice(task_id, refund_invoice)
        say("7. each side sends an invoice for its own share (payout-invoice, refund-invoice)")
        task = await self.wait(task_id, "PAID", "paying both shares")
        after = await self.wallets.balances_msat()
        # the employer paid the amount (directly to the escrow node: no routing fee) and got
        # the share back; measured around the whole task, when no HTLC is pending
        received = after["worker"] - before["worker"]
        refunded = after["employer"] - before["employer"] + task["amount_msat"]
        say(f"8. both shares paid, then the hold settled → {task['state']}")
        say(f"   worker received {received} msat, employer got back {refunded} msat")
        return self.summary(task, funding) | {
            "worker_received_msat": received,
            "employer_refunded_msat": refunded,
            "split_worker_msat": split["worker_msat"],
            "split_employer_msat": split["employer_msat"],
            "arbiter_pubkey": arbiter.pubkey_hex,
        }

    async def reject_overturned(self, arbiter: TaskholdClient) -> dict[str, Any]:
        """The employer rejects good work; the worker disputes; the arbiter rules for the
        worker, who is paid in full."""
        say = self.say
        before = await self.wallets.balances_msat()
        task, funding = await self.fund()
        task_id = task["task_id"]
        task = await self.worker.claim(task_id)
        say(f"4. worker claims it → {task['state']}")
        task = await self.submit(task_id, await self.wallets.invoice(task["payout_msat"]))
        say(f"5. worker submits a signed proof and a payout invoice → {task['state']}")
        reason = "I do not like it"
        task = await self.employer.reject(task_id, reason)
        say(f"6. employer rejects it ({reason!r}) → {task['state']}")
        task = await self.worker.open_dispute(task_id, "it is the translation that was asked")
        say(f"7. worker disputes the rejection → {task['state']}")
        task = await arbiter.resolve_dispute(task_id, "worker", "the translation is complete")
        say(f"8. arbiter {arbiter.pubkey_hex[:16]}… rules for the worker → {task['state']}")
        task = await self.wait(task_id, "PAID", "paying the worker")
        after = await self.wallets.balances_msat()
        received = after["worker"] - before["worker"]
        say(f"9. worker received {received} msat, hold invoice settled → {task['state']}")
        return self.summary(task, funding) | {
            "arbiter_pubkey": arbiter.pubkey_hex,
            "worker_received_msat": received,
        }

    async def cooperative_cancel(self) -> dict[str, Any]:
        """After the claim the worker proposes to part and the employer accepts: the hold is
        cancelled at once, and the employer's wallet is whole again."""
        say = self.say
        before = await self.wallets.balances_msat()
        task, funding = await self.fund()
        task_id = task["task_id"]
        task = await self.worker.claim(task_id)
        say(f"4. worker claims it → {task['state']}")
        await self.worker.propose_agreement(task_id, 0, "I cannot do it after all")
        say("5. worker proposes to cancel by agreement (worker_msat 0)")
        task = await self.employer.accept_agreement(task_id, 0)
        say(f"6. employer accepts: {task['refund_reason']}")
        task = await self.wait(task_id, "REFUNDED", "cancelling the hold invoice")
        after = await self.wallets.balances_msat()
        change = after["employer"] - before["employer"]
        say(f"7. hold invoice cancelled, employer balance {change:+} msat → {task['state']}")
        return self.summary(task, funding) | {
            "employer_balance_change_msat": change,
            "worker_received_msat": after["worker"] - before["worker"],
        }

    async def milestones(self) -> dict[str, Any]:
        """Three milestones, funded sequentially: milestone k+1's hold invoice is issued only
        once milestone k is PAID, and its worker is the first milestone's."""
        say, start = self.say, int(time.time())
        plan = [
            {
                "title": f"Translate part {n} of the README to German",
                "description": f"Put part {n} at a public URL and submit it.",
                "amount_msat": MILESTONE_AMOUNT_MSAT,
                "deadline_at": start + MILESTONE_DEMO_SPACING_S * n,
                "acceptance": {"required_fields": ["url"], "url_fields": ["url"]},
            }
            for n in range(1, MILESTONES + 1)
        ]
        say(f"employer {self.employer.pubkey_hex[:16]}…  worker {self.worker.pubkey_hex[:16]}…")
        created = await self.employer.create_milestones(plan, funding_mode="sequential")
        ids = created["series"]["task_ids"]
        states = ", ".join(m["state"] for m in created["milestones"])
        say(f"1. created a series of {len(ids)} milestones, funded sequentially → {states}")
        lead = (await self.employer.info())["renewal"]["renewal_lead_blocks"]
        milestones, rounds, step = [], [], 2
        for index, task_id in enumerate(ids):
            task = await self.wait(task_id, "PENDING_FUNDING", "opening the milestone's invoice")
            await self.wallets.pay(task["funding"]["payment_request"])
            if index == 0:
                await self.wait(task_id, "FUNDED", "waiting for the HTLC")
                task = await self.worker.claim(task_id)
                taken = "claimed by the worker"
            else:
                task = await self.wait(task_id, "CLAIMED", "assigning the series' worker")
                taken = "assigned to the same worker"
            say(f"{step}. milestone {index + 1}: hold invoice paid and held, {taken}")
            task = await self._renew_once(task, lead, step + 1)
            task = await self.pay_out(task, step + 2)
            step += 5
            milestones.append(self._milestone_summary(index, task))
            rounds.append(await self._rounds(task))
        series = await self.employer.get_series(ids[0])
        paid = all(m["state"] == "PAID" for m in series["milestones"])
        return {
            "task_id": ids[0],
            "series_id": ids[0],
            "final_state": "PAID" if paid else series["milestones"][-1]["state"],
            "milestones": milestones,
            "rounds": rounds,
            "employer_pubkey": self.employer.pubkey_hex,
            "worker_pubkey": self.worker.pubkey_hex,
            "server_url": self.employer.base_url,
        }

    def _milestone_summary(self, index: int, task: dict[str, Any]) -> dict[str, Any]:
        payment_hash, preimage = task["funding"]["payment_hash"], task["preimage"]
        if hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != payment_hash:
            raise DemoError(f"milestone {index + 1}'s preimage does not match its payment hash")
        self.say(f"   milestone {index + 1}: sha256(preimage) == payment_hash: True")
        return {
            "task_id": task["task_id"],
            "index": index,
            "state": task["state"],
            "payment_hash": payment_hash,
            "preimage": preimage,
            "amount_msat": task["amount_msat"],
            "payout_msat": task["payout_msat"],
        }

    async def renewal(self, renewals: int = RENEWAL_DEMO_ROUNDS - 1) -> dict[str, Any]:
        """A task longer than one hold window: its first hold is sized to the cap; each time
        the chain (mined by the simulator's route) brings the hold to its renewal lead, the
        employer pays the next round and taskhold cancels the previous one; then it is paid."""
        say = self.say
        lead = (await self.employer.info())["renewal"]["renewal_lead_blocks"]
        task = await self.employer.create_task(
            "Maintain the README translation for ten days",
            "Keep the German README in step with the English one until the deadline.",
            DEMO_AMOUNT_MSAT,
            int(time.time()) + RENEWAL_DEMO_DEADLINE_S,
            acceptance={"required_fields": ["url"], "url_fields": ["url"]},
        )
        task_id = task["task_id"]
        say(f"1. created a ten-day task {task_id[:16]}… (renewal needed: {task['renewal_needed']})")
        funding = (await self.employer.request_funding(task_id))["funding"]
        await self.wallets.pay(funding["payment_request"])
        task = await self.wait(task_id, "FUNDED", "waiting for the HTLC")
        say(f"2. round 1 held, cltv_expiry {funding['cltv_expiry_delta']} blocks → FUNDED")
        for step in range(3, 3 + renewals):
            task = await self._renew_once(task, lead, step)
        step = 3 + renewals
        task = await self.worker.claim(task_id)
        say(f"{step}. worker claims it → {task['state']}")
        task = await self.pay_out(task, step + 1)
        return self.summary(task, task["funding"]) | {
            "rounds": await self._rounds(task),
        }

    async def _renew_once(self, task: dict[str, Any], lead: int, step: int) -> dict[str, Any]:
        """Mine the task's hold to its renewal lead on the simulator, pay the renewal taskhold
        opens, and wait for the task to move to it (the previous hold is cancelled)."""
        task_id = task["task_id"]
        expiry = task["funding"]["accepted_htlc_expiry_height"]
        height = (await self.employer.sim_wallets())["height"]
        await self.employer.sim_mine(max(0, expiry - lead - height))
        renewal = await self._until(task_id, lambda t: t["renewal"], "the renewal")
        await self.wallets.pay(renewal["payment_request"])
        funding_round = renewal["funding_round"]

        def moved(t: dict[str, Any], r: int = funding_round) -> dict[str, Any] | None:
            return t if t["funding"]["funding_round"] == r else None

        await self._until(task_id, moved, "the renewal's HTLC")
        for _ in range(600):  # the previous round's cancel ends the renewal: sign after it
            rows = (await self.employer.transitions(task_id))["transitions"]
            if any(
                row["event"]["type"] == "RoundCancelled"
                and row["event"]["funding_round"] == funding_round - 1
                for row in rows
            ):
                break
            await asyncio.sleep(0.1)
        else:
            raise DemoError("waited in vain for the previous round's cancel")
        task = await self.employer.get_task(task_id)
        self.say(
            f"{step}. hold within {lead} blocks of expiry: employer pays round"
            f" {funding_round}, the previous hold is cancelled"
        )
        return task

    async def _until(
        self, task_id: str, found: Callable[[dict[str, Any]], Any], what: str
    ) -> dict[str, Any]:
        """Poll the task until ``found`` gives something (the engine acts on its tick)."""
        for _ in range(600):
            task = await self.employer.get_task(task_id)
            value = found(task)
            if value:
                return dict(value)
            await asyncio.sleep(0.1)
        raise DemoError(f"waited in vain for {what}")

    async def _rounds(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        """Every funding round of the task, as its log tells it, with how it ended."""
        rounds: dict[int, dict[str, Any]] = {}
        for row in (await self.employer.transitions(task["task_id"]))["transitions"]:
            event = row["event"]
            kind = event["type"]
            if kind == "FundingRequested" or kind == "RenewalOpened":
                rounds[event["funding_round"]] = {
                    "funding_round": event["funding_round"],
                    "payment_hash": event["payment_hash_hex"],
                    "state": "OPEN",
                }
            elif kind == "RoundCancelled":
                rounds[event["funding_round"]]["state"] = "CANCELED"
        current = rounds[task["funding"]["funding_round"]]
        current["state"] = "SETTLED" if task["preimage"] else "HELD"
        return [rounds[number] for number in sorted(rounds)]

    async def private(self) -> dict[str, Any]:
        """A private task: the description and the proof carry a random marker, sealed to the
        parties; only their commitments go public."""
        say, marker = self.say, secrets.token_hex(16)
        task = await self.employer.create_task(
            "A private errand",
            f"Fetch the parcel; the code word is {marker}.",
            DEMO_AMOUNT_MSAT,
            int(time.time()) + 3600,
            acceptance={"required_fields": ["url"], "url_fields": ["url"]},
            private=True,
        )
        task_id = task["task_id"]
        say(f"1. created private task {task_id[:16]}…; details_hash {task['details_hash'][:16]}…")
        funding = (await self.employer.request_funding(task_id))["funding"]
        await self.wallets.pay(funding["payment_request"])
        await self.wait(task_id, "FUNDED", "waiting for the HTLC")
        say("2. funded: the employer's payment is held")
        task = await self.worker.claim(task_id)
        details = self.worker.open_details(task)
        read = marker in (details or "")
        say(f"3. worker claims it and opens the operator's copy: marker read {read}")
        invoice = await self.wallets.invoice(task["payout_msat"])
        task = await self.worker.submit_proof(
            task_id, {"url": f"https://example.org/{marker}"}, invoice
        )
        committed = task["proof_hash"][:16]
        say(f"4. worker sends a sealed proof; proof_hash {committed}… → {task['state']}")
        sealed_invoice = str(task["payout_invoice"]).startswith("sealed:")
        say(f"   its payout invoice went sealed to the operator: {sealed_invoice}")
        proof = self.employer.open_proof(task) or {}
        say(f"5. employer opens its copy of the proof: marker read {marker in str(proof)}")
        await self.employer.approve(task_id)
        task = await self.wait(task_id, "PAID", "paying the worker")
        say(f"6. worker paid {task['payout_msat']} msat → {task['state']}")
        return self.summary(task, funding) | {
            "secret_marker": marker,
            "visibility": task["visibility"],
            "details_hash": task["details_hash"],
            "proof_hash": task["proof_hash"],
            "payout_invoice": invoice,
            "payout_invoice_sealed": sealed_invoice,
        }

    async def onchain(self, connection_file: Path, data_dir: Path) -> dict[str, Any]:
        """``onchain``: the employer funds from its on-chain wallet by a submarine swap, the
        worker takes the reward to an on-chain address by a reverse swap; each keeps its own
        swap keys, and the devnet's swap server plays Boltz. Blocks are mined as it goes."""
        say, devnet_dir = self.say, connection_file.parent
        url = devnet_swap_api(connection_file)
        employer_chain = LndWallet.from_connection_file(connection_file, "employer")
        worker_chain = LndWallet.from_connection_file(connection_file, "worker")
        employer_swaps = SwapRecords(data_dir / "participants" / "employer-swaps")
        worker_swaps = SwapRecords(data_dir / "participants" / "worker-swaps")
        try:
            async with BoltzApi(url) as api, devnet_control.mining(devnet_dir):
                task = await self.create()
                task_id = task["task_id"]
                say(f"1. created task {task_id[:16]}… for {DEMO_AMOUNT_MSAT} msat")
                funding_swap = await fund_by_swap(
                    self.employer,
                    api,
                    employer_chain,
                    employer_swaps,
                    task_id,
                    network=Network.REGTEST,
                    max_fee_sat=ONCHAIN_MAX_FEE_SAT,
                )
                quote = funding_swap.quote
                say(
                    f"2. employer locks {quote.payer_sends} sat on chain (swap fee"
                    f" {quote.swap_fee}, miner fee {quote.miner_fees}) in"
                    f" {funding_swap.lockup_txid[:16]}…"
                )
                task = await self.wait(task_id, "FUNDED", "waiting for the swap to pay the hold")
                funding = task["funding"]
                say(f"3. the swap paid the hold invoice → {task['state']}")
                await self.worker.claim(task_id)
                payout_swap = await start_payout_swap(
                    self.worker,
                    api,
                    worker_swaps,
                    task_id,
                    network=Network.REGTEST,
                    max_fee_sat=ONCHAIN_MAX_FEE_SAT,
                )
                await self.submit(task_id, payout_swap.invoice)
                say(
                    f"4. worker claims, submits its proof with a reverse swap's invoice"
                    f" ({payout_swap.quote.recipient_gets} sat on chain after fees)"
                )
                await self.employer.approve(task_id)
                say("5. employer approves; taskhold pays the swap's invoice")
                claim = await claim_payout(
                    self.worker,
                    api,
                    worker_swaps,
                    payout_swap.swap_id,
                    await worker_chain.new_address(),
                    timeout_s=180,
                    poll_s=0.5,
                )
                task = await self.wait(task_id, "PAID", "waiting for the payout to settle")
                say(f"6. worker claims on chain in {claim.txid[:16]}… → {task['state']}")
                await wait_for_status(
                    api,
                    funding_swap.swap_id,
                    {statuses.TRANSACTION_CLAIMED},
                    timeout_s=180,
                    interval=0.5,
                )
                say("7. the swap server claimed the employer's lockup with the hold's preimage")
        finally:
            await employer_chain.close()
            await worker_chain.close()
        payout_record = worker_swaps.get(payout_swap.swap_id)
        return self.summary(task, funding) | {
            "swap_api": url,
            "funding_swap_id": funding_swap.swap_id,
            "funding_lockup_txid": funding_swap.lockup_txid,
            "funding_lockup_sat": quote.payer_sends,
            "payout_swap_id": payout_swap.swap_id,
            "payout_lockup_txid": payout_record.lockup_txid,
            "payout_claim_txid": claim.txid,
            "payout_claim_cooperative": claim.cooperative,
            "payout_onchain_sat": payout_record.expected_amount_sat,
            "payout_preimage": payout_record.preimage_hex,  # public: the claim revealed it
        }

    async def pool(self) -> dict[str, Any]:
        """``pool``: four tasks funded, each placed on one escrow node, then all four paid."""
        funded = [await self.fund() for _ in range(POOL_TASKS)]
        paid = []
        for step, (task, _) in enumerate(funded):
            task = await self.worker.claim(task["task_id"])
            self.say(f"{4 + step * 4}. worker claims task {task['task_id'][:16]}…")
            paid.append(await self.pay_out(task, 5 + step * 4))
        states = {task["task_id"]: task["state"] for task in paid}
        last_task, last_funding = paid[-1], funded[-1][1]
        all_paid = set(states.values()) == {"PAID"}
        return self.summary(last_task, last_funding) | {
            "final_state": "PAID" if all_paid else last_task["state"],
            "final_states": states,
            "payment_hashes": [funding["payment_hash"] for _, funding in funded],
        }

    async def paused_intake(self, store: Store) -> dict[str, Any]:
        """The operator pauses intake with a claimed task in flight: new tasks wait, the
        claimed one is paid; after the resume a new task is taken again."""
        task, funding = await self.fund()
        task_id = task["task_id"]
        task = await self.worker.claim(task_id)
        self.say(f"4. worker claims it → {task['state']}")
        await set_intake(store, paused=True, actor=DEMO_OPERATOR, reason="the demo's pause")
        self.say("5. the operator pauses intake (taskhold admin pause)")
        try:
            await self.create()
        except TaskholdAPIError as exc:
            if exc.status != 503 or exc.code != "intake_paused":
                raise DemoError(f"a new task was refused for another reason: {exc}") from None
            refused, retry_after_s = exc.code, exc.retry_after_s
        else:
            raise DemoError("a new task was taken while intake was paused")
        self.say(f"6. a new task is refused → 503 {refused}, Retry-After {retry_after_s} s")
        task = await self.pay_out(task, 7)
        await set_intake(store, paused=False, actor=DEMO_OPERATOR)
        again = await self.create()
        self.say(f"10. the operator resumes intake; a new task is taken → {again['state']}")
        if again["state"] != "DRAFT":
            raise DemoError(f"the task after the resume is {again['state']}, not DRAFT")
        return self.summary(task, funding) | {
            "refused_code": refused,
            "retry_after_s": retry_after_s,
        }

    async def moderation(self, moderator: Moderator) -> dict[str, Any]:
        """The operator blocks the worker and delists the task once the proof is in: the
        worker's new writes are refused, the task leaves the board, and the approval still
        pays the worker."""
        task, funding = await self.fund()
        task_id = task["task_id"]
        task = await self.worker.claim(task_id)
        self.say(f"4. worker claims it → {task['state']}")
        task = await self.submit(task_id, await self.wallets.invoice(task["payout_msat"]))
        self.say(f"5. worker submits a signed proof and a payout invoice → {task['state']}")
        listed_before = await self.on_board(task_id)
        await moderator.block(self.worker.pubkey_hex, "the demo's report", actor=DEMO_OPERATOR)
        await moderator.delist(task_id, "the demo's report", actor=DEMO_OPERATOR)
        self.say("6. the operator blocks the worker's key and delists the task")
        try:
            await self.worker.create_task("spam", "", 1_000_000, int(time.time()) + 3600)
        except TaskholdAPIError as exc:
            if exc.status != 403 or exc.code != "blocked_key":
                raise DemoError(f"the blocked key was refused for another reason: {exc}") from None
            refused = exc.code
        else:
            raise DemoError("a blocked key created a task")
        self.say(f"7. the blocked worker's new task is refused → 403 {refused}")
        listed_after = await self.on_board(task_id)
        self.say(f"8. the task on the public board: before {listed_before}, now {listed_after}")
        if not listed_before or listed_after:
            raise DemoError("the delisted task did not leave the board")
        task = await self.employer.approve(task_id)
        self.say(f"9. employer approves → {task['state']}")
        task = await self.wait(task_id, "PAID", "paying the blocked worker what it is owed")
        self.say(f"10. worker paid {task['payout_msat']} msat all the same → {task['state']}")
        return self.summary(task, funding) | {
            "refused_code": refused,
            "listed_before": listed_before,
            "listed_after": listed_after,
        }

    async def jurisdiction(self, url: str) -> dict[str, Any]:
        """The operator blocks a network: a worker from it is refused with 451 and told why,
        while one from an open place claims the same task and is paid."""
        terms = await self.employer.info()
        blocked = terms["jurisdiction"]["blocked_networks"]
        self.say(f"0. the operator's terms block {', '.join(blocked)} (GET /v1/info)")
        task, funding = await self.fund()
        task_id = task["task_id"]
        async with (
            httpx.AsyncClient(headers={"X-Forwarded-For": BLOCKED_CLIENT}) as far_http,
            TaskholdClient(url, NostrKeys.generate(), http=far_http) as far_worker,
        ):
            try:
                await far_worker.claim(task_id)
            except TaskholdAPIError as exc:
                if exc.status != 451:
                    raise DemoError(f"the blocked worker was refused otherwise: {exc}") from None
                refused_status, refused_code = exc.status, exc.code
            else:
                raise DemoError("a worker from a blocked network claimed the task")
        self.say(
            f"4. a worker at {BLOCKED_CLIENT} tries to claim → {refused_status} {refused_code}"
        )
        task = await self.worker.claim(task_id)
        self.say(f"5. a worker from an open place claims it → {task['state']}")
        task = await self.pay_out(task, 6)
        return self.summary(task, funding) | {
            "blocked_networks": blocked,
            "refused_status": refused_status,
            "refused_code": refused_code,
        }

    async def on_board(self, task_id: str) -> bool:
        """Whether the public board (the task list without a participant filter) shows it."""
        board = await self.employer.list_tasks()
        return any(item["task_id"] == task_id for item in board["tasks"])

    async def task_cli(self, keys_dir: Path) -> dict[str, Any]:
        """Both parties through ``taskhold task``, one process per command, as people would run
        it (the ``task-cli`` scenario): nothing here calls the API but through the command."""
        await asyncio.to_thread(keys_dir.mkdir, parents=True, exist_ok=True)
        server = self.employer.base_url
        commands: list[str] = []

        async def task(step: str, *args: str) -> dict[str, Any]:
            commands.append(shlex.join(("taskhold", "task", *args)))
            answer = await _task_command(*args, "--json")
            self.say(f"{len(commands)}. taskhold task {args[0]} → {step.format(**answer)}")
            return answer

        employer_file, worker_file = keys_dir / "employer.key", keys_dir / "worker.key"
        employer = await task("{npub}", "keygen", "--key-file", str(employer_file))
        worker = await task("{npub}", "keygen", "--key-file", str(worker_file))
        as_employer = ("--server", server, "--key-file", str(employer_file))
        as_worker = ("--server", server, "--key-file", str(worker_file))
        created = await task(
            "{task_id} {state}", "create", "Translate the README to German",
            "--amount-sat", str(DEMO_AMOUNT_MSAT // 1000), "--url-field", "url",
            "--field", "url", *as_employer,
        )  # fmt: skip
        task_id = str(created["task_id"])
        await task("{state} (paid from the employer's sim wallet)", "fund", task_id,
                   "--wallet", "sim", *as_employer)  # fmt: skip
        await task("{state}", "claim", task_id, *as_worker)
        await task(
            "{state} (payout invoice from the worker's sim wallet)", "proof", task_id,
            "--field", "url=https://example.org/README.de.md", "--wallet", "sim", *as_worker,
        )  # fmt: skip
        paid = await task("{state}", "approve", task_id, *as_employer)
        return self.summary(paid, paid["funding"]) | {
            "employer_pubkey": employer["pubkey"],
            "worker_pubkey": worker["pubkey"],
            "commands": commands,
        }

    def summary(self, task: dict[str, Any], funding: dict[str, Any]) -> dict[str, Any]:
        preimage = task.get("preimage")
        payment_hash = funding["payment_hash"]
        if preimage is not None:
            matches = hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash
            self.say(f"   sha256(preimage) == payment_hash: {matches}")
        return {
            "task_id": task["task_id"],
            "final_state": task["state"],
            "payment_hash": payment_hash,
            "preimage": preimage,
            "amount_msat": task["amount_msat"],
            "fee_msat": task["fee_msat"],
            "payout_msat": task["payout_msat"],
            "employer_pubkey": self.employer.pubkey_hex,
            "worker_pubkey": self.worker.pubkey_hex,
            "server_url": self.employer.base_url,
        }


async def _task_command(*args: str) -> dict[str, Any]:
    """``taskhold task ARGS`` in a process of its own; the JSON object it prints. The demo's
    own ``TASKHOLD_*`` settings are not passed on: the command gets only its options."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("TASKHOLD_")
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskhold.cli", "task", *args,
        env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        said = stderr.decode().strip().splitlines()
        raise DemoError(
            f"taskhold task {args[0]} failed: {said[-1] if said else process.returncode}"
        )
    answer: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return answer


def devnet_escrow(connection_file: Path) -> str:
    """The devnet's escrow backend, ``lnd`` or ``ldk`` (``taskhold devnet up --escrow``)."""
    try:
        escrow = json.loads(connection_file.read_text()).get("escrow_backend", "lnd")
    except (OSError, ValueError) as exc:
        raise DemoError(f"cannot read {connection_file}: {exc}") from None
    if escrow not in ("lnd", "ldk"):
        raise DemoError(f"{connection_file} names an unknown escrow backend {escrow!r}")
    return str(escrow)


def _offered_swap_api(connection_file: Path) -> str | None:
    """The devnet's swap server, offered to workers for on-chain payouts, if it runs one."""
    try:
        return devnet_swap_api(connection_file)
    except (DemoError, OSError, ValueError):
        return None


def devnet_swap_api(connection_file: Path) -> str:
    """The devnet swap server's Boltz API URL, from the devnet's connection file."""
    connection = json.loads(connection_file.read_text())
    server = connection.get("swap_server") or {}
    if not server.get("url"):
        raise DemoError(f"{connection_file} names no swap server: restart the devnet")
    return str(server["url"])


async def _wait(
    client: TaskholdClient,
    task_id: str,
    states: set[str],
    console: Console,
    quiet: bool,
    what: str,
) -> dict[str, Any]:
    if quiet:
        return await client.wait_for_state(task_id, states, timeout_s=60)
    with console.status(f"{what}…") as status:
        return await client.wait_for_state(
            task_id,
            states,
            timeout_s=60,
            on_poll=lambda t: status.update(f"{what}… (task is {t['state']})"),
        )


def dump(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, sort_keys=True)
