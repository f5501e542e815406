"""How a ``taskhold task`` command talks to the participant: one session (server, keys,
``--json``), the result on stdout, progress and errors on stderr, every failure turned into a
message and an exit code (1: refused or failed; 2: bad usage) and, with ``--json``, an
``{"error": {...}}`` object on stdout, and waits shown as they go.

Nothing here knows a command: ``cli`` holds those, one per client call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.nostr import NostrKeys, pubkey_hex
from taskhold.nostr.remote_signer import BunkerAddress, RemoteSigner, RemoteSignerError
from taskhold.nostr.remote_signer import remote_signer as connect_remote_signer
from taskhold.nostr.wallet_connect import WalletConnectError
from taskhold.tasks.model import TERMINAL_STATES

from .identity import Identity, IdentityError, participant_identity
from .wallets import PaymentFailed, Wallet, WalletSpecError, open_wallet

__all__ = [
    "Result",
    "Session",
    "duration_s",
    "follow_until",
    "json_object",
    "me_or",
    "note",
    "open_session",
    "pay_until_held",
    "plain",
    "proof_fields",
    "pubkey_option",
    "run",
    "task_result",
    "usage",
    "wait_until",
    "wallet_for",
]

_err = Console(stderr=True, soft_wrap=True, highlight=False)
"""Progress and errors; never wrapped to the terminal (an invoice or a path stays whole)."""


@dataclass(frozen=True, slots=True)
class Session:
    server: str
    identity: Identity | None
    """A key read from its file, or the remote signer to connect to when the command runs."""
    as_json: bool
    signer_timeout_s: float = 30.0
    """How long a remote signer may take over each answer."""
    signs: bool = True
    """Whether the command signs: a read never connects to a remote signer."""


@dataclass(frozen=True, slots=True)
class Result:
    data: dict[str, Any]
    """What ``--json`` prints."""
    line: str
    """What a person sees on stdout."""


class Ended(Exception):
    """The task ended in a state other than the one waited for."""


def usage(message: str) -> typer.Exit:
    _err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


def open_session(
    server: str,
    key_file: Path | None,
    signer: str | None,
    as_json: bool,
    *,
    signs: bool = True,
    signer_timeout_s: float = 30.0,
) -> Session:
    try:
        identity = participant_identity(key_file, signer)
    except IdentityError as exc:
        raise usage(str(exc)) from None
    if identity is None and signs:
        raise usage("this command signs: give --key-file or --signer (or TASKHOLD_KEY_FILE)")
    if signer_timeout_s <= 0:
        raise usage("--signer-timeout must be more than 0 s")
    return Session(server, identity, as_json, signer_timeout_s, signs)


@contextlib.asynccontextmanager
async def _signing_keys(session: Session) -> AsyncIterator[NostrKeys | RemoteSigner]:
    """The session's key, or its remote signer connected; a fresh key for a read (it signs
    nothing)."""
    if isinstance(session.identity, BunkerAddress) and session.signs:
        async with connect_remote_signer(session.identity, session.signer_timeout_s) as signer:
            note(f"signing through the remote signer as {signer.npub}")
            yield signer
    else:
        yield session.identity if isinstance(session.identity, NostrKeys) else NostrKeys.generate()


def run(session: Session, work: Callable[[TaskholdClient], Awaitable[Result]]) -> None:
    """Run ``work`` with a client, print its result, and turn every failure into a message and
    an exit code."""

    async def main() -> Result:
        async with (
            _signing_keys(session) as keys,
            TaskholdClient(session.server, keys, retries=3) as client,
        ):
            return await work(client)

    try:
        result = asyncio.run(main())
    except KeyboardInterrupt:
        _err.print("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:  # a participant sees a sentence, never a traceback
        kind, message, extra = _failure(exc, session.server)
        if session.as_json:
            error = {"kind": kind, "message": message, **extra}
            sys.stdout.write(json.dumps({"error": error}) + "\n")
        _err.print(f"[red]error:[/red] {escape(message)}")
        raise typer.Exit(2 if kind == "usage" else 1) from None
    if session.as_json:
        sys.stdout.write(json.dumps(result.data) + "\n")
    elif result.line:
        sys.stdout.write(result.line + "\n")


def _failure(exc: Exception, server: str) -> tuple[str, str, dict[str, Any]]:
    """What went wrong, for a person and (``--json``) for a script: a kind (``usage`` means exit
    code 2), a sentence, and for a refusal the server's problem code, title, detail, status."""
    if isinstance(exc, TaskholdAPIError):
        detail = f": {exc.detail}" if exc.detail and exc.detail != exc.title else ""
        problem = {"code": exc.code, "title": exc.title, "detail": exc.detail}
        message = f"refused: {exc.title}{detail} ({exc.code}, HTTP {exc.status})"
        return "refused", message, {**problem, "status": exc.status}
    if isinstance(exc, IdentityError | WalletSpecError):
        return "usage", str(exc), {}
    if isinstance(exc, httpx.InvalidURL):
        return "usage", f"--server {server!r}: {exc}", {}
    if isinstance(exc, PaymentFailed | WalletConnectError):
        return "payment", str(exc), {}
    if isinstance(exc, RemoteSignerError):
        return "signer", str(exc), {}
    if isinstance(exc, Ended):
        return "ended", str(exc), {}
    if isinstance(exc, TimeoutError):
        return "timeout", f"timed out: {exc}", {}
    if isinstance(exc, httpx.HTTPError):
        return "unreachable", f"cannot reach taskhold at {server}: {exc or type(exc).__name__}", {}
    return "unexpected", f"unexpected error ({type(exc).__name__}): {exc}", {}


def note(message: str) -> None:
    _err.print(escape(message))


async def wait_until(
    client: TaskholdClient, task_id: str, states: Collection[str], timeout_s: float
) -> dict[str, Any]:
    """Poll until the task is in one of ``states``, showing each state it passes on stderr;
    a task that ends elsewhere ends the wait (``Ended``)."""
    note(f"waiting for {task_id} to be {' or '.join(sorted(states))} (up to {timeout_s:g} s)")
    shown: list[str] = []

    def on_poll(task: dict[str, Any]) -> None:
        state = str(task.get("state"))
        if not shown or shown[-1] != state:
            shown.append(state)
            note(f"  {task_id}: {state}")

    ends = {*states, *(state.value for state in TERMINAL_STATES)}
    task = await client.wait_for_state(task_id, ends, timeout_s, poll_s=0.5, on_poll=on_poll)
    if task["state"] not in states:
        raise Ended(f"task {task_id} ended {task['state']} instead")
    return task


async def follow_until(
    client: TaskholdClient, task_id: str, states: Collection[str], timeout_s: float
) -> dict[str, Any]:
    """Like :func:`wait_until`, woken by the task's public log instead of a timer: each
    transition the relays carry is shown once its operator signature and chain check out
    (``TaskholdClient.subscribe``), then the task is read to see whether the wait is over. The
    log is read from its start, so transitions made before the watch began are shown too, up to
    the task's current version (a transition's ``seq`` is the version it made)."""
    note(f"following the public log of {task_id} until {' or '.join(sorted(states))}")
    ends = {*states, *(state.value for state in TERMINAL_STATES)}
    task: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout_s):
            transitions = client.subscribe(task_id=task_id)
            async with contextlib.aclosing(transitions):
                async for transition in transitions:
                    note(f"  {task_id} #{transition.seq} {transition.op} (verified)")
                    task = await client.get_task(task_id)
                    if task["state"] in ends and transition.seq >= task["version"]:
                        break  # the log has caught up with the task, and it is where asked
    except TimeoutError:
        raise TimeoutError(
            f"task {task_id} is still {task.get('state', 'unseen in the log')} after"
            f" {timeout_s:g} s"
        ) from None
    if task["state"] not in states:
        raise Ended(f"task {task_id} ended {task['state']} instead")
    return task


def pubkey_option(value: str | None, option: str) -> str | None:
    """A pubkey option (``npub1…`` or hex) as the hex the API takes; ``me`` is left as it is,
    for :func:`me_or` to resolve once the command knows its key."""
    if value is None or value == "me":
        return value
    try:
        return pubkey_hex(value)
    except ValueError:
        raise usage(f"{option} {value!r}: not a Nostr public key (npub1… or 64 hex)") from None


def me_or(pubkey: str | None, client: TaskholdClient) -> str | None:
    """``pubkey``, with ``me`` read as the key the client signs with."""
    return client.pubkey_hex if pubkey == "me" else pubkey


def task_result(task: dict[str, Any]) -> Result:
    return Result(task, f"{task['task_id']} {task['state']}")


_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_s(text: str, option: str) -> int:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise usage(f"{option} {text!r}: a duration such as 3600, 90m, 24h or 7d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise usage(f"{option} is not JSON") from None
    if not isinstance(value, dict):
        raise usage(f"{option} must be a JSON object")
    return value


@contextlib.asynccontextmanager
async def wallet_for(
    spec: str | None, client: TaskholdClient, default_sim_name: str, timeout_s: float = 60.0
) -> AsyncIterator[Wallet | None]:
    """The wallet ``spec`` names (None for none), opened before anything is asked of the
    server, so a bad ``--wallet`` costs nothing; closed afterwards."""
    if spec is None:
        yield None
        return
    wallet = open_wallet(spec, client, default_sim_name, timeout_s)
    try:
        yield wallet
    finally:
        await wallet.aclose()


async def pay_until_held(
    wallet: Wallet, invoice: str, client: TaskholdClient, task_id: str, timeout_s: float
) -> dict[str, Any]:
    """Pay the task's hold invoice with ``wallet`` until taskhold holds the payment (FUNDED).

    The payment and the wait run side by side: a wallet that answers only once a payment
    settles (NWC) never answers for a hold invoice before the task ends, so the task being
    FUNDED is what says the payment went through; a wallet that fails first ends the wait
    with its failure."""
    paying = asyncio.create_task(wallet.pay(invoice))
    held = asyncio.create_task(wait_until(client, task_id, {"FUNDED"}, timeout_s))
    try:
        done, _ = await asyncio.wait({paying, held}, return_when=asyncio.FIRST_COMPLETED)
        if paying in done:
            paying.result()  # the wallet's failure, if it failed
        return await held
    except TimeoutError:
        if not paying.done():
            raise TimeoutError(
                f"the {wallet.description} has not paid: task {task_id} is not FUNDED after"
                f" {timeout_s:g} s"
            ) from None
        raise
    finally:
        for task in (paying, held):
            task.cancel()
        await asyncio.gather(paying, held, return_exceptions=True)


def proof_fields(fields: list[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for item in fields or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise usage(f"--field {item!r}: write NAME=VALUE")
        body[name] = value
    if not body:
        raise usage("a proof needs --field NAME=VALUE (or --proof JSON)")
    return body


def plain(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)
