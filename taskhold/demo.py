"""``taskhold demo``: one task driven over HTTP from creation to PAID (or to REFUNDED).

It starts a server on the embedded defaults, makes fresh employer and worker keys, and plays
both parties with the Python client, so every step is the same signed request a real client
would send. The simulator's wallet routes stand in for the employer's and worker's wallets.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from sqlalchemy import select

from taskhold.app import Services, build_services
from taskhold.client import TaskholdClient
from taskhold.keys.admin import init_key_store
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.nostr import NostrKeys
from taskhold.server import free_port, running_server
from taskhold.settings import Settings
from taskhold.store.models import LogEntryRow

__all__ = ["DemoError", "run_demo"]

DEMO_AMOUNT_MSAT = 150_000_000
PUBLISH_TIMEOUT_S = 30.0


class DemoError(Exception):
    """The demo could not finish; the message says why."""


class Wallets(Protocol):
    """The employer's and the worker's own wallets: taskhold never holds either."""

    async def pay(self, payment_request: str) -> None: ...

    async def invoice(self, amount_msat: int) -> str: ...

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

    async def close(self) -> None:
        await self._employer.close()
        await self._worker.close()


async def run_demo(
    data_dir: Path,
    *,
    refund: bool,
    as_json: bool,
    console: Console,
    relays: list[str] | None = None,
    keystore: str = "file",
    devnet_dir: Path | None = None,
) -> dict[str, Any]:
    """The demo on the simulator, or with ``devnet_dir`` on the running regtest devnet."""
    connection_file = None if devnet_dir is None else devnet_dir / "devnet.json"
    if connection_file is not None and not connection_file.exists():
        raise DemoError(f"no devnet at {devnet_dir}: run `taskhold devnet up` first")
    settings = Settings(
        data_dir=data_dir,
        keystore=keystore,
        lightning="sim" if connection_file is None else "lnd",
        lnd_connection_file=connection_file,
        sim_routes_enabled=connection_file is None,
        engine_tick_s=0.2,
        default_review_window_s=3600,
        default_dispute_window_s=3600,
        relays=relays or [],
    )
    say: Callable[[str], None] = (lambda _: None) if as_json else console.print
    if keystore == "pkcs11":  # a SoftHSM2 token under the data directory unless configured
        init_key_store(settings)
    services = await build_services(settings, embedded_relay=True)
    try:
        port = free_port(settings.host)
        async with running_server(services, settings.host, port) as url:
            network = "Lightning simulator" if connection_file is None else "regtest lnd devnet"
            say(f"[bold]taskhold[/] serving at {url} (SQLite + {network}, data in {data_dir})")
            say(_relay_line(services))
            result = await _drive(
                url,
                refund=refund,
                say=say,
                console=console,
                quiet=as_json,
                connection_file=connection_file,
            )
            log_ids = await _log_event_ids(services, result["task_id"])
            await _wait_published(services, log_ids)
            say(f"8. {len(log_ids)} signed log entries published to {services.settings.relays[0]}")
        return result | {
            "operator_pubkey": services.signer.get_public_key(),
            "relay_url": services.settings.relays[0],
            "log_event_ids": log_ids,
        }
    finally:
        await services.close()


def _relay_line(services: Services) -> str:
    relays = ", ".join(services.settings.relays)
    if services.embedded_relay is not None:
        return f"public log on the embedded relay {relays}"
    return f"public log to {relays}"


async def _log_event_ids(services: Services, task_id: str) -> list[str]:
    stmt = select(LogEntryRow.event_id).where(LogEntryRow.task_id == task_id)
    async with services.store.transaction() as tx:
        return list((await tx.session.execute(stmt.order_by(LogEntryRow.seq))).scalars())


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
    *,
    refund: bool,
    say: Callable[[str], None],
    console: Console,
    quiet: bool,
    connection_file: Path | None,
) -> dict[str, Any]:
    employer_keys, worker_keys = NostrKeys.generate(), NostrKeys.generate()
    async with (
        TaskholdClient(url, employer_keys) as employer,
        TaskholdClient(url, worker_keys) as worker,
    ):
        wallets: Wallets = (
            SimWallets(employer) if connection_file is None else DevnetWallets(connection_file)
        )
        try:
            return await _play(employer, worker, wallets, refund, say, console, quiet)
        finally:
            await wallets.close()


async def _play(
    employer: TaskholdClient,
    worker: TaskholdClient,
    wallets: Wallets,
    refund: bool,
    say: Callable[[str], None],
    console: Console,
    quiet: bool,
) -> dict[str, Any]:
    employer_keys_hex, worker_keys_hex = employer.pubkey_hex, worker.pubkey_hex
    say(f"employer {employer_keys_hex[:16]}…  worker {worker_keys_hex[:16]}…")
    task = await employer.create_task(
        "Translate the README to German",
        "Put the translation at a public URL and submit it.",
        DEMO_AMOUNT_MSAT,
        int(time.time()) + 3600,
        acceptance={"required_fields": ["url"], "url_fields": ["url"]},
    )
    task_id = task["task_id"]
    say(f"1. created task {task_id[:16]}… for {DEMO_AMOUNT_MSAT} msat → {task['state']}")
    funding = (await employer.request_funding(task_id))["funding"]
    invoice, cltv = funding["payment_request"], funding["cltv_expiry_delta"]
    say(f"2. hold invoice {invoice[:40]}… (cltv_expiry {cltv} blocks)")
    await wallets.pay(funding["payment_request"])
    task = await _wait(employer, task_id, {"FUNDED"}, console, quiet, "waiting for the HTLC")
    say(f"3. employer's payment is held by the escrow node → {task['state']}")
    if refund:
        await employer.cancel(task_id, reason="changed my mind")
        say("4. employer cancels the funded task")
        task = await _wait(employer, task_id, {"REFUNDED"}, console, quiet, "refunding")
        say(f"5. hold invoice cancelled, the HTLC went back → {task['state']}")
    else:
        task = await worker.claim(task_id)
        say(f"4. worker claims it → {task['state']}")
        payout_invoice = await wallets.invoice(task["payout_msat"])
        task = await worker.submit_proof(
            task_id, {"url": "https://example.org/README.de.md"}, payout_invoice
        )
        say(f"5. worker submits a signed proof and a payout invoice → {task['state']}")
        task = await employer.approve(task_id)
        say(f"6. employer approves → {task['state']}")
        task = await _wait(employer, task_id, {"PAID"}, console, quiet, "paying the worker")
        say(f"7. worker paid {task['payout_msat']} msat, hold invoice settled → {task['state']}")
    preimage = task.get("preimage")
    payment_hash = funding["payment_hash"]
    if preimage is not None:
        matches = hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash
        say(f"   sha256(preimage) == payment_hash: {matches}")
    return {
        "task_id": task_id,
        "final_state": task["state"],
        "payment_hash": payment_hash,
        "preimage": preimage,
        "amount_msat": task["amount_msat"],
        "fee_msat": task["fee_msat"],
        "payout_msat": task["payout_msat"],
        "employer_pubkey": employer_keys_hex,
        "worker_pubkey": worker_keys_hex,
        "server_url": employer.base_url,
    }


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
