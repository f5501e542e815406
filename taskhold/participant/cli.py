"""``taskhold task …``: an employer's or a worker's side of a task, one command per client call.

Every command talks to one server (``--server``, or ``TASKHOLD_SERVER``) and signs with the
participant's key (``--key-file``: a 0600 file made by ``taskhold task keygen``), or through a
NIP-46 remote signer that holds it (``--signer bunker://…``); reads need no key. Wallets: lnd,
Nostr Wallet Connect (``nostr+walletconnect://…``), or the simulator's. Waits (a payment
landing, a state) are shown on stderr; stdout carries the result: a plain line for people (a
task id, an invoice), or with ``--json`` one JSON object for scripts.

Exit codes: 0 done; 1 the server refused (its problem title, detail and code on stderr), a
payment failed, a wait timed out, the server, the remote signer or the wallet could not be
reached or refused; 2 bad usage (options, key
file, signer, wallet spec). No traceback reaches the participant.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from taskhold.client import TaskholdClient
from taskhold.nostr import NostrKeys
from taskhold.tasks.model import TERMINAL_STATES, TaskState

from .identity import IdentityError, create_key_file
from .terminal import (
    Result,
    duration_s,
    follow_until,
    json_object,
    me_or,
    note,
    open_session,
    pay_until_held,
    plain,
    proof_fields,
    pubkey_option,
    run,
    task_result,
    usage,
    wait_until,
    wallet_for,
)
from .wallets import shown_spec

__all__ = ["task_app"]

task_app = typer.Typer(
    help="Your side of a task, as employer or worker. Writes are signed with --key-file (a 0600"
    " file holding your nsec or hex secret; make one with keygen, see it with whoami) or"
    " through a NIP-46 remote signer (--signer bunker://…); reads need no key."
    " --server defaults to TASKHOLD_SERVER. --json prints one JSON object on stdout (on"
    ' failure {"error": {kind, message, code, …}}); progress goes to stderr. Exit codes: 0'
    " done, 1 refused by the server or failed (payment, timeout, unreachable), 2 bad usage"
    " (options, key file, signer, wallet).",
    epilog="""\b
A task from start to end (employer E, worker W):
  taskhold task keygen --key-file E.key
  id=$(taskhold task create "Fix the typo" --amount-sat 5000 --url-field url --key-file E.key)
  taskhold task fund $id --key-file E.key [--wallet lnd:devnet.json#employer]
  taskhold task claim $id --key-file W.key
  taskhold task proof $id --field url=https://example.org/pr/1 --wallet lnd:FILE#worker \\
      --key-file W.key
  taskhold task approve $id --key-file E.key      (waits until PAID)
Without --wallet, fund prints the hold invoice for you to pay from any wallet, then waits.
Keys in a remote signer, wallets behind Nostr Wallet Connect (secrets in the environment):
  export TASKHOLD_SIGNER='bunker://<signer-pubkey>?relay=wss://…&secret=…'
  export TASKHOLD_WALLET='nostr+walletconnect://<wallet-pubkey>?relay=wss://…&secret=…'
  taskhold task fund $id                          (signed in the bunker, paid over NWC)""",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Server = Annotated[str, typer.Option("--server", envvar="TASKHOLD_SERVER", help="taskhold's URL")]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="TASKHOLD_KEY_FILE",
        help="your Nostr secret (nsec or hex), in a file only you can read (0600)",
    ),
]
Signer = Annotated[
    str | None,
    typer.Option(
        "--signer",
        envvar="TASKHOLD_SIGNER",
        help="a NIP-46 remote signer, bunker://<signer-pubkey>?relay=…&secret=…, instead of"
        " --key-file: every write is signed there (prefer TASKHOLD_SIGNER: the secret then"
        " stays out of the process list)",
    ),
]
SignerTimeout = Annotated[
    float,
    typer.Option(
        "--signer-timeout",
        envvar="TASKHOLD_SIGNER_TIMEOUT",
        help="how long the remote signer may take to answer (s)",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]
WalletSpec = Annotated[
    str | None,
    typer.Option(
        "--wallet",
        envvar="TASKHOLD_WALLET",
        help="your wallet: lnd:FILE[#NODE] (an lnd connection file),"
        " nostr+walletconnect://… (NWC, NIP-47; prefer TASKHOLD_WALLET: the string holds a"
        " secret), or sim[:NAME] on a simulator server",
    ),
]
WalletTimeout = Annotated[
    float,
    typer.Option(
        "--wallet-timeout",
        envvar="TASKHOLD_WALLET_TIMEOUT",
        help="how long an NWC wallet may take to answer (s); a payment waits for --timeout",
        min=0.001,
    ),
]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="wait for the outcome")]
Timeout = Annotated[float, typer.Option("--timeout", help="how long to wait (s)")]
Reason = Annotated[str, typer.Option("--reason", help="why, in a sentence the other side reads")]


@task_app.command()
def keygen(
    key_file: Annotated[Path, typer.Option("--key-file", help="the new file (made 0600)")],
    as_json: Json = False,
) -> None:
    """Make a new Nostr key in a new file only you can read; prints its public key."""
    try:
        keys = create_key_file(key_file)
    except IdentityError as exc:
        raise usage(str(exc)) from None
    note(f"wrote a new key to {key_file} (mode 0600); keep it: it is who you are on taskhold")
    data = {"key_file": str(key_file), "pubkey": keys.pubkey_hex, "npub": keys.npub}
    sys.stdout.write((json.dumps(data) if as_json else keys.npub) + "\n")


@task_app.command()
def whoami(
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """Your public key (npub; --json adds the hex), the one the server knows you by; with
    --signer, the one the remote signer signs for."""
    session = open_session("", key_file, signer, as_json, signer_timeout_s=signer_timeout)

    async def work(client: TaskholdClient) -> Result:
        return Result({"pubkey": client.pubkey_hex, "npub": client.npub}, client.npub)

    run(session, work)


@task_app.command()
def create(
    title: str,
    server: Server,
    amount_sat: Annotated[int, typer.Option("--amount-sat", min=1, help="the reward (sat)")],
    description: Annotated[str, typer.Option("--description", help="what is to be done")] = "",
    deadline: Annotated[
        str, typer.Option("--deadline", help="how long the worker has: 3600, 90m, 24h, 7d")
    ] = "24h",
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="a field the proof must have (repeatable)"),
    ] = None,
    url_field: Annotated[
        list[str] | None,
        typer.Option("--url-field", help="a proof field that must be an http(s) URL (repeatable)"),
    ] = None,
    acceptance: Annotated[
        str | None,
        typer.Option("--acceptance", help="the whole acceptance spec as JSON (instead)"),
    ] = None,
    claim_mode: Annotated[
        str | None, typer.Option("--claim-mode", help="first, apply or direct")
    ] = None,
    direct_worker: Annotated[
        str | None,
        typer.Option("--direct-worker", help="the worker's npub or hex pubkey (claim mode direct)"),
    ] = None,
    review_window: Annotated[
        str | None, typer.Option("--review-window", help="how long you have to review a proof")
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="seal the description to the parties")
    ] = False,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """Post a task as its employer; prints its id. Fund it next with `fund`."""
    session = open_session(server, key_file, signer, as_json, signer_timeout_s=signer_timeout)
    if private and signer is not None:
        raise usage("--private seals the description with your key: give --key-file, not --signer")
    spec: dict[str, Any] | None = None
    if acceptance is not None:
        if field or url_field:
            raise usage("give --acceptance or --field/--url-field, not both")
        spec = json_object(acceptance, "--acceptance")
    elif field or url_field:
        spec = {"required_fields": list(field or ()), "url_fields": list(url_field or ())}
    deadline_at = int(time.time()) + duration_s(deadline, "--deadline")
    worker_hex = pubkey_option(direct_worker, "--direct-worker")
    review_window_s = (
        None if review_window is None else duration_s(review_window, "--review-window")
    )

    async def work(client: TaskholdClient) -> Result:
        task = await client.create_task(
            title,
            description,
            amount_sat * 1000,
            deadline_at,
            acceptance=spec,
            review_window_s=review_window_s,
            claim_mode=claim_mode,
            direct_worker=worker_hex,
            private=private,
        )
        note(
            f"task {task['task_id']}: {task['state']}, {task['amount_msat'] // 1000} sat"
            f" (worker gets {task['payout_msat'] // 1000} sat); fund it with"
            f" `taskhold task fund {task['task_id']}`"
        )
        return Result(task, str(task["task_id"]))

    run(session, work)


@task_app.command()
def fund(
    task_id: str,
    server: Server,
    wallet: WalletSpec = None,
    wallet_timeout: WalletTimeout = 60.0,
    wait: Wait = True,
    timeout: Timeout = 600.0,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """Get the task's hold invoice (the one issued before, if fund was run already) and pay it
    with --wallet, or print it for you to pay; then wait until taskhold holds the payment
    (FUNDED). The money stays yours until the task is decided: the invoice is settled only
    when the worker is paid, cancelled otherwise. With --json the invoice to pay is shown on
    stderr, and the JSON object (with payment_request) follows once the wait is over. With
    --wallet the payment is followed until taskhold holds it, --no-wait or not (an NWC wallet
    answers a hold invoice only once it settles: the task being FUNDED is the answer)."""
    session = open_session(server, key_file, signer, as_json, signer_timeout_s=signer_timeout)

    async def work(client: TaskholdClient) -> Result:
        async with wallet_for(wallet, client, "employer", wallet_timeout) as chosen:
            task = await client.get_task(task_id)
            if task["state"] == "PENDING_FUNDING" and task.get("funding"):
                note("the task has its hold invoice already (fund was run before): paying that")
            else:
                task = await client.request_funding(task_id)
            funding = task["funding"]
            invoice = funding["payment_request"]
            amount_sat = funding["amount_msat"] // 1000
            if chosen is None:
                note(f"pay this hold invoice of {amount_sat} sat from your wallet:")
                if session.as_json:  # stdout is for the one JSON object
                    note(invoice)
                else:  # the plain line, whole, for a person or a pipe
                    sys.stdout.write(invoice + "\n")
                    sys.stdout.flush()
            else:
                note(f"paying the hold invoice of {amount_sat} sat with the {chosen.description}")
                task = await pay_until_held(chosen, invoice, client, task_id, timeout)
        if wait and chosen is None:
            task = await wait_until(client, task_id, {"FUNDED"}, timeout)
        data = {
            "task_id": task_id,
            "state": task["state"],
            "payment_request": invoice,
            "payment_hash": funding["payment_hash"],
            "amount_msat": funding["amount_msat"],
            "paid_with": None if wallet is None else shown_spec(wallet),
        }
        return Result(data, f"{task_id} {task['state']}" if wait or wallet else "")

    run(session, work)


@task_app.command()
def claim(
    task_id: str,
    server: Server,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """Take a funded task as its worker."""
    session = open_session(server, key_file, signer, as_json, signer_timeout_s=signer_timeout)

    async def work(client: TaskholdClient) -> Result:
        return task_result(await client.claim(task_id))

    run(session, work)


@task_app.command()
def proof(
    task_id: str,
    server: Server,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="a proof field, NAME=VALUE (repeatable)"),
    ] = None,
    proof_json: Annotated[
        str | None, typer.Option("--proof", help="the whole proof as a JSON object (instead)")
    ] = None,
    invoice: Annotated[
        str | None,
        typer.Option("--invoice", help="your payout invoice (BOLT11) for the task's payout"),
    ] = None,
    wallet: WalletSpec = None,
    wallet_timeout: WalletTimeout = 60.0,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """As the worker: send the proof of the work with the invoice you are paid to (--invoice,
    or one made by --wallet for the task's payout amount)."""
    session = open_session(server, key_file, signer, as_json, signer_timeout_s=signer_timeout)
    if proof_json is not None and field:
        raise usage("give --proof or --field, not both")
    body = json_object(proof_json, "--proof") if proof_json is not None else proof_fields(field)
    if invoice is None and wallet is None:
        raise usage("give --invoice BOLT11, or --wallet to make one")
    if invoice is not None:
        wallet = None  # an invoice given is the one paid to, whatever TASKHOLD_WALLET says

    async def work(client: TaskholdClient) -> Result:
        async with wallet_for(wallet, client, "worker", wallet_timeout) as chosen:
            payout_invoice = invoice
            if chosen is not None:
                task = await client.get_task(task_id)
                sat = task["payout_msat"] // 1000
                note(f"payout invoice of {sat} sat from the {chosen.description}")
                payout_invoice = await chosen.invoice(
                    task["payout_msat"], f"taskhold task {task_id}"
                )
        assert payout_invoice is not None  # --invoice or --wallet, checked above
        return task_result(await client.submit_proof(task_id, body, payout_invoice))

    run(session, work)


@task_app.command()
def approve(
    task_id: str,
    server: Server,
    wait: Wait = True,
    timeout: Timeout = 300.0,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """As the employer: accept the proof; taskhold pays the worker, then settles your hold
    invoice. Waits until the task is PAID (--no-wait returns at once)."""
    session = open_session(server, key_file, signer, as_json, signer_timeout_s=signer_timeout)

    async def work(client: TaskholdClient) -> Result:
        task = await client.approve(task_id)
        if wait:
            task = await wait_until(client, task_id, {"PAID"}, timeout)
        return task_result(task)

    run(session, work)


@task_app.command()
def reject(
    task_id: str,
    server: Server,
    reason: Reason,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """As the employer: refuse the proof, saying why; the worker may dispute."""
    session = open_session(server, key_file, signer, as_json, signer_timeout_s=signer_timeout)

    async def work(client: TaskholdClient) -> Result:
        return task_result(await client.reject(task_id, reason))

    run(session, work)


@task_app.command()
def dispute(
    task_id: str,
    server: Server,
    reason: Reason,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """As employer or worker: ask an arbiter to decide."""
    session = open_session(server, key_file, signer, as_json, signer_timeout_s=signer_timeout)

    async def work(client: TaskholdClient) -> Result:
        return task_result(await client.open_dispute(task_id, reason))

    run(session, work)


@task_app.command()
def cancel(
    task_id: str,
    server: Server,
    reason: Annotated[str, typer.Option("--reason", help="why")] = "",
    wait: Wait = True,
    timeout: Timeout = 300.0,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """As the employer: cancel a task nobody works on; a held payment goes back to you. Waits
    until the task is CANCELLED or REFUNDED (the hold invoice cancelled)."""
    session = open_session(server, key_file, signer, as_json, signer_timeout_s=signer_timeout)

    async def work(client: TaskholdClient) -> Result:
        task = await client.cancel(task_id, reason)
        if wait:
            task = await wait_until(client, task_id, {"CANCELLED", "REFUNDED"}, timeout)
        return task_result(task)

    run(session, work)


@task_app.command()
def show(
    task_id: str,
    server: Server,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """One task as the server has it (no key needed). A private task's description is opened
    with --key-file when that key is one it was sealed to; --json adds it as
    ``opened_description``."""
    session = open_session(
        server, key_file, signer, as_json, signer_timeout_s=signer_timeout, signs=False
    )

    async def work(client: TaskholdClient) -> Result:
        task = await client.get_task(task_id)
        lines = [f"{name}: {plain(task[name])}" for name in _SHOWN if task.get(name) is not None]
        if task.get("visibility") == "private":
            opens = isinstance(session.identity, NostrKeys)  # a remote signer opens nothing
            opened = client.open_details(task) if opens else None
            task = {**task, "opened_description": opened}
            sealed = "(sealed: give the --key-file of a party to read it)"
            lines.insert(3, f"description: {sealed if opened is None else opened}")
        elif task.get("description"):
            lines.insert(3, f"description: {task['description']}")
        funding = task.get("funding") or {}
        if funding.get("payment_request") and task["state"] == "PENDING_FUNDING":
            lines.append(f"payment_request: {funding['payment_request']}")
        return Result(task, "\n".join(lines))

    run(session, work)


_SHOWN = (
    "task_id",
    "state",
    "title",
    "amount_msat",
    "payout_msat",
    "deadline_at",
    "employer_pubkey",
    "worker_pubkey",
    "proof",
    "rejection_reason",
)
"""What ``show`` prints for a person; ``--json`` prints the whole task."""


@task_app.command("list")
def list_tasks(
    server: Server,
    state: Annotated[str | None, typer.Option("--state", help="only tasks in this state")] = None,
    employer: Annotated[
        str | None, typer.Option("--employer", help="an employer's npub or hex pubkey, or me")
    ] = None,
    worker: Annotated[
        str | None, typer.Option("--worker", help="a worker's npub or hex pubkey, or me")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 50,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """Tasks on the server, newest first: one line each (id, state, sat, title)."""
    signs = "me" in (employer, worker)  # "me" is the pubkey of --key-file
    session = open_session(
        server, key_file, signer, as_json, signer_timeout_s=signer_timeout, signs=signs
    )

    employer_hex = pubkey_option(employer, "--employer")
    worker_hex = pubkey_option(worker, "--worker")

    async def work(client: TaskholdClient) -> Result:
        answer = await client.list_tasks(
            state=state,
            employer=me_or(employer_hex, client),
            worker=me_or(worker_hex, client),
            limit=limit,
        )
        lines = [
            f"{task['task_id']} {task['state']} {task['amount_msat'] // 1000} {task['title']}"
            for task in answer.get("tasks", [])
        ]
        return Result(answer, "\n".join(lines))

    run(session, work)


@task_app.command()
def watch(
    task_id: str,
    server: Server,
    until: Annotated[
        list[str] | None,
        typer.Option("--until", help="a state to stop at (repeatable; default: the end)"),
    ] = None,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="follow the task's public log on the relays (each transition's signature"
            " checked) instead of asking the server every half second",
        ),
    ] = False,
    timeout: Timeout = 3600.0,
    key_file: KeyFile = None,
    signer: Signer = None,
    signer_timeout: SignerTimeout = 30.0,
    as_json: Json = False,
) -> None:
    """Show the task's states as they change (stderr) until it reaches --until or ends; prints
    the task then."""
    session = open_session(
        server, key_file, signer, as_json, signer_timeout_s=signer_timeout, signs=False
    )
    known = [state.value for state in TaskState]
    unknown = [state for state in until or () if state not in known]
    if unknown:
        raise usage(f"--until {', '.join(unknown)}: no such state; one of {', '.join(known)}")
    states = set(until or (state.value for state in TERMINAL_STATES))
    wait = follow_until if log else wait_until

    async def work(client: TaskholdClient) -> Result:
        return task_result(await wait(client, task_id, states, timeout))

    run(session, work)
