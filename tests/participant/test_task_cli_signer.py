"""``taskhold task … --signer bunker://…``: the employer's key stays in a NIP-46 remote signer.

A real remote signer (``support.nip46_bunker``: nostr-sdk 0.45.1 has no signer side in Python)
on a real relay (nostr-sdk's embedded one), and a real ``taskhold serve`` on the simulator. The
command runs in its own process, so the bunker, on the test's event loop, can answer it.

What must hold: every write is signed in the bunker under the user key it names; the bunker's
secret shows nowhere (stdout, stderr, ``--json``, the server's log); a bunker that refuses or
never answers ends the command with exit 1 and a sentence; a bunker that answers with another
key's signature, or another event, is refused before the server hears anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from support.crash_harness import Serve
from support.nip46_bunker import Behaviour, Bunker
from support.task_cli import Ran, task_cli, task_cli_process

from taskhold.nostr import KIND_PROOF, KIND_REQUEST, NostrKeys
from taskhold.nostr.embedded import EmbeddedRelay

AMOUNT_SAT = 3_000
Starter = Callable[[Behaviour], Awaitable[Bunker]]


@pytest.fixture
async def started(relay: EmbeddedRelay) -> AsyncIterator[Starter]:
    """Starts bunkers on the relay (``await started("sign")``); all stopped after the test."""
    running: list[Bunker] = []

    async def start(behaviour: Behaviour) -> Bunker:
        bunker = Bunker(relay.url, NostrKeys.generate(), behaviour=behaviour)
        await bunker.start()
        running.append(bunker)
        return bunker

    yield start
    for bunker in running:
        await bunker.stop()


@pytest.fixture
async def bunker(started: Starter) -> Bunker:
    return await started("sign")


async def cli(*args: str) -> Ran:
    """The command in its own process: this loop keeps serving the bunker meanwhile."""
    return await task_cli_process(*args)


def shows_no_secret(bunker: Bunker, *runs: Ran, serve: Serve | None = None) -> None:
    for ran in runs:
        assert bunker.secret not in ran.stdout + ran.stderr
    if serve is not None:
        assert bunker.secret not in serve.log.read_text()


def task_count(server: Serve) -> int:
    return len(httpx.get(f"{server.url}/v1/tasks", params={"limit": 200}).json()["tasks"])


async def test_a_task_goes_to_paid_with_both_parties_signing_through_bunkers(
    server: Serve, started: Starter, bunker: Bunker
) -> None:
    signer = ("--signer", bunker.uri)
    worker_bunker = await started("sign")
    worker = ("--signer", worker_bunker.uri)
    at = ("--server", server.url)

    whoami = await cli("whoami", *signer, "--json")
    assert whoami.code == 0, whoami.stderr
    assert whoami.json()["pubkey"] == bunker.user.pubkey_hex  # the user key, not the signer's
    assert bunker.user.pubkey_hex != bunker.signer_pubkey

    created = await cli(
        "create", "Proofread", "--amount-sat", str(AMOUNT_SAT), "--field", "url", *at, *signer,
        "--json",
    )  # fmt: skip
    assert created.code == 0, created.stderr
    task_id = created.json()["task_id"]
    assert created.json()["employer_pubkey"] == bunker.user.pubkey_hex
    funded = await cli("fund", task_id, "--wallet", "sim", *at, *signer, "--json")
    assert funded.code == 0, funded.stderr
    assert funded.json()["state"] == "FUNDED"
    claimed = await cli("claim", task_id, *at, *worker)
    assert claimed.stdout == f"{task_id} CLAIMED\n"
    proved = await cli(
        "proof", task_id, "--field", "url=https://example.org/1", "--wallet", "sim", *at, *worker,
        "--json",
    )  # fmt: skip
    assert proved.code == 0, proved.stderr
    assert proved.json()["worker_pubkey"] == worker_bunker.user.pubkey_hex
    assert KIND_PROOF in worker_bunker.kinds_signed  # the proof event, signed in the bunker
    approved = await cli("approve", task_id, *at, *signer, "--json")
    assert approved.code == 0, approved.stderr
    assert approved.json()["state"] == "PAID"

    # create, the funding request and the approval were each signed in the bunker
    assert bunker.kinds_signed.count(KIND_REQUEST) >= 3
    mine = await cli("list", "--employer", "me", *at, *signer, "--json")
    assert [task["task_id"] for task in mine.json()["tasks"]] == [task_id]
    shows_no_secret(bunker, whoami, created, funded, approved, mine, serve=server)
    shows_no_secret(worker_bunker, claimed, proved, serve=server)


@pytest.mark.parametrize("behaviour", ["wrong_key", "tamper"])
async def test_an_event_the_bunker_signed_wrongly_is_refused_before_the_server_hears_of_it(
    server: Serve, started: Starter, behaviour: Behaviour
) -> None:
    bunker = await started(behaviour)
    before = task_count(server)
    ran = await cli(
        "create", "Anything", "--amount-sat", "1000", "--server", server.url,
        "--signer", bunker.uri, "--json",
    )  # fmt: skip
    assert ran.code == 1
    assert "sign_event" in bunker.methods
    error = ran.json()["error"]
    assert error["kind"] == "signer"
    assert "nothing was sent" in error["message"]
    assert task_count(server) == before
    shows_no_secret(bunker, ran, serve=server)


async def test_a_bunker_that_refuses_is_a_clear_error(server: Serve, started: Starter) -> None:
    bunker = await started("refuse")
    ran = await cli(
        "create", "Anything", "--amount-sat", "1000", "--server", server.url,
        "--signer", bunker.uri,
    )  # fmt: skip
    assert ran.code == 1
    assert "the remote signer refused" in ran.stderr
    assert "the user declined this request" in ran.stderr  # the bunker's own words
    shows_no_secret(bunker, ran)


async def test_a_bunker_that_never_answers_times_out(server: Serve, started: Starter) -> None:
    bunker = await started("silent")
    ran = await cli(
        "approve", "0" * 32, "--server", server.url, "--signer", bunker.uri,
        "--signer-timeout", "1", "--json",
    )  # fmt: skip
    assert ran.code == 1
    error = ran.json()["error"]
    assert error["kind"] == "timeout"
    assert "did not answer connect and get_public_key within 1 s" in error["message"]
    shows_no_secret(bunker, ran)


def test_a_bunker_string_that_is_not_one_is_bad_usage_without_repeating_it() -> None:
    secret = "s3cr3t-value-1234"
    for spec in (
        f"bunker://not-a-pubkey?relay=ws://127.0.0.1:1&secret={secret}",
        f"bunker://{'a' * 64}?secret={secret}",
        f"nostrconnect://{'a' * 64}?relay=ws://127.0.0.1:1&secret={secret}",
    ):
        ran = task_cli("whoami", "--signer", spec)
        assert ran.code == 2, spec
        assert "--signer" in ran.stderr
        assert secret not in ran.stdout + ran.stderr


def test_a_private_task_needs_the_key_itself() -> None:
    ran = task_cli(
        "create", "Sealed", "--amount-sat", "1000", "--private", "--server", "http://127.0.0.1:9",
        "--signer", f"bunker://{'a' * 64}?relay=ws://127.0.0.1:1&secret=x",
    )  # fmt: skip
    assert ran.code == 2
    assert "--private" in ran.stderr


async def test_a_read_never_asks_the_bunker(
    server: Serve, started: Starter, bunker: Bunker
) -> None:
    created = await cli(
        "create", "Read me", "--amount-sat", "1000", "--server", server.url,
        "--signer", bunker.uri, "--json",
    )  # fmt: skip
    task_id = created.json()["task_id"]
    silent = await started("silent")  # TASKHOLD_SIGNER set, say, to a bunker that is away

    shown = await cli("show", task_id, "--server", server.url, "--signer", silent.uri, "--json")

    assert shown.code == 0, shown.stderr
    assert shown.json()["employer_pubkey"] == bunker.user.pubkey_hex
    assert silent.methods == []
