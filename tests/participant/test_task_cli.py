"""``taskhold task``: a participant drives a task through the command line against a real
``taskhold serve`` on the simulator. Refusals come back as the server's words with exit 1, bad
keys and options as exit 2, never a traceback; ``--json`` prints one JSON object."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
from support.crash_harness import Serve
from support.task_cli import Ran, key_file, task_cli

AMOUNT_SAT = 20_000


@pytest.fixture
def employer(tmp_path: Path) -> Path:
    return key_file(tmp_path / "employer.key")


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    return key_file(tmp_path / "worker.key")


def as_party(server: Serve, key: Path, *args: str) -> Ran:
    return task_cli(*args, "--server", server.url, "--key-file", str(key))


def balances(server: Serve) -> dict[str, int]:
    return dict(httpx.get(f"{server.url}/v1/sim/wallets").json()["balances_msat"])


def create(server: Serve, employer: Path) -> str:
    ran = as_party(
        server, employer, "create", "Fix the typo", "--amount-sat", str(AMOUNT_SAT),
        "--url-field", "url", "--field", "url", "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    task = ran.json()
    assert task["state"] == "DRAFT"
    assert task["acceptance"]["url_fields"] == ["url"]
    return str(task["task_id"])


def submitted(server: Serve, employer: Path, worker: Path) -> str:
    """A task created, funded from the employer's sim wallet, claimed and proved by the worker
    (payout invoice from the worker's sim wallet), all through the command line."""
    task_id = create(server, employer)
    ran = as_party(server, employer, "fund", task_id, "--wallet", "sim", "--json")
    assert ran.code == 0, ran.stderr
    funded = ran.json()
    assert funded["state"] == "FUNDED"
    assert funded["payment_request"].startswith("lnbcrt")
    assert "waiting for" in ran.stderr  # the progress, on stderr
    assert as_party(server, worker, "claim", task_id).stdout == f"{task_id} CLAIMED\n"
    ran = as_party(
        server, worker, "proof", task_id, "--field", "url=https://example.org/pr/1",
        "--wallet", "sim", "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    assert ran.json()["state"] == "SUBMITTED"
    return task_id


def test_approve_by_a_key_that_is_not_the_employer_is_the_servers_refusal(
    server: Serve, employer: Path, worker: Path
) -> None:
    task_id = submitted(server, employer, worker)
    before = balances(server)

    ran = as_party(server, worker, "approve", task_id, "--json")

    assert ran.code == 1
    error = ran.json()["error"]
    assert (error["kind"], error["code"], error["status"]) == ("refused", "wrong_role", 403)
    assert "refused: Not allowed: only the employer may approve a task" in ran.stderr
    assert "(wrong_role, HTTP 403)" in ran.stderr
    shown = task_cli("show", task_id, "--server", server.url, "--json").json()
    assert shown["state"] == "SUBMITTED"
    assert balances(server)["worker"] == before["worker"]


def test_a_task_goes_from_create_to_paid_through_the_command_line(
    server: Serve, employer: Path, worker: Path
) -> None:
    worker_before = balances(server)["worker"]
    task_id = submitted(server, employer, worker)

    ran = as_party(server, employer, "approve", task_id, "--json")

    assert ran.code == 0, ran.stderr
    paid = ran.json()
    assert paid["state"] == "PAID"
    assert balances(server)["worker"] - worker_before == paid["payout_msat"]
    mine = as_party(server, employer, "list", "--employer", "me", "--json").json()
    assert [task["task_id"] for task in mine["tasks"]] == [task_id]
    assert as_party(server, worker, "list", "--worker", "me").stdout.startswith(
        f"{task_id} PAID {AMOUNT_SAT} Fix the typo"
    )


def test_fund_without_a_wallet_prints_the_invoice_as_one_plain_line(
    server: Serve, employer: Path
) -> None:
    task_id = create(server, employer)

    ran = as_party(server, employer, "fund", task_id, "--no-wait")

    assert ran.code == 0, ran.stderr
    (invoice,) = ran.stdout.splitlines()
    assert invoice.startswith("lnbcrt")
    httpx.post(f"{server.url}/v1/sim/pay", json={"payment_request": invoice}).raise_for_status()
    watched = task_cli("watch", task_id, "--until", "FUNDED", "--server", server.url)
    assert watched.code == 0, watched.stderr
    assert watched.stdout == f"{task_id} FUNDED\n"
    assert f"{task_id}: FUNDED" in watched.stderr


def test_fund_with_json_and_no_wallet_shows_the_invoice_on_stderr(
    server: Serve, employer: Path
) -> None:
    task_id = create(server, employer)

    ran = as_party(server, employer, "fund", task_id, "--no-wait", "--json")

    assert ran.code == 0, ran.stderr
    invoice = ran.json()["payment_request"]
    assert invoice in ran.stderr.split()  # for the person at the terminal, whole


def test_fund_run_again_pays_the_invoice_issued_the_first_time(
    server: Serve, employer: Path
) -> None:
    task_id = create(server, employer)
    printed = as_party(server, employer, "fund", task_id, "--no-wait", "--json").json()

    again = as_party(server, employer, "fund", task_id, "--wallet", "sim", "--json")

    assert again.code == 0, again.stderr
    assert again.json()["payment_request"] == printed["payment_request"]
    assert again.json()["state"] == "FUNDED"
    assert "has its hold invoice already" in again.stderr


def test_cancel_by_the_worker_is_refused_and_by_the_employer_refunds(
    server: Serve, employer: Path, worker: Path
) -> None:
    task_id = create(server, employer)
    employer_before = balances(server)["employer"]
    assert as_party(server, employer, "fund", task_id, "--wallet", "sim").code == 0
    assert balances(server)["employer"] < employer_before  # held

    refused = as_party(server, worker, "cancel", task_id, "--reason", "mine now")
    cancelled = as_party(server, employer, "cancel", task_id, "--json")

    assert refused.code == 1
    assert "refused:" in refused.stderr
    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json()["state"] == "REFUNDED"
    assert balances(server)["employer"] == employer_before
    assert "waiting for" in cancelled.stderr


def test_a_key_file_others_can_read_is_refused_unused(server: Serve, employer: Path) -> None:
    secret = employer.read_text().strip()
    employer.chmod(0o644)

    ran = as_party(server, employer, "create", "t", "--amount-sat", "1000")

    assert ran.code == 2
    assert "can be read by others (mode 0644)" in ran.stderr
    assert f"chmod 600 {employer}" in ran.stderr
    assert secret not in ran.stderr + ran.stdout


@pytest.mark.parametrize("content", ["not a key\n", "ab" * 31, "nsec1qqqq\n", ""])
def test_a_key_file_without_a_key_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(content)
    path.chmod(0o600)

    ran = task_cli("claim", "t1", "--server", "http://127.0.0.1:9", "--key-file", str(path))

    assert ran.code == 2
    assert f"key file {path} holds no Nostr secret key" in ran.stderr
    if content.strip():
        assert content.strip() not in ran.stderr


def test_a_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    ran = task_cli(
        "claim", "t1", "--server", "http://127.0.0.1:9", "--key-file", str(tmp_path / "no")
    )
    assert ran.code == 2
    assert "cannot read key file" in ran.stderr


def test_keygen_makes_a_0600_file_and_never_replaces_one(tmp_path: Path) -> None:
    path = tmp_path / "me.key"

    made = task_cli("keygen", "--key-file", str(path), "--json")
    again = task_cli("keygen", "--key-file", str(path))

    assert made.code == 0, made.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) == 64
    answer = made.json()
    assert answer["npub"].startswith("npub1")
    assert secret not in made.stdout + made.stderr
    assert again.code == 2
    assert "exists already" in again.stderr
    assert path.read_text().strip() == secret
    assert task_cli("whoami", "--key-file", str(path), "--json").json() == {
        "pubkey": answer["pubkey"],
        "npub": answer["npub"],
    }


def test_list_takes_an_npub_and_refuses_what_is_no_pubkey(server: Serve, employer: Path) -> None:
    task_id = create(server, employer)
    npub = task_cli("whoami", "--key-file", str(employer)).stdout.strip()

    by_npub = task_cli("list", "--employer", npub, "--server", server.url, "--json")
    bad = task_cli("list", "--employer", "alice", "--server", server.url)

    assert [task["task_id"] for task in by_npub.json()["tasks"]] == [task_id]
    assert bad.code == 2
    assert "--employer 'alice': not a Nostr public key" in bad.stderr


def test_a_signing_command_without_a_key_is_a_usage_error() -> None:
    ran = task_cli("approve", "t1", "--server", "http://127.0.0.1:9")
    assert ran.code == 2
    assert "give --key-file" in ran.stderr


def test_a_malformed_bunker_signer_or_one_with_a_key_file_is_bad_usage(tmp_path: Path) -> None:
    ran = task_cli(
        "claim", "t1", "--server", "http://127.0.0.1:9", "--signer", "bunker://ab?relay=x"
    )
    assert ran.code == 2
    assert "the remote signer's pubkey is 64 lower hex" in ran.stderr
    both = task_cli(
        "claim", "t1", "--server", "http://127.0.0.1:9", "--signer", "bunker://ab",
        "--key-file", str(key_file(tmp_path / "k")),
    )  # fmt: skip
    assert both.code == 2
    assert "not both" in both.stderr


@pytest.mark.parametrize(
    ("wallet", "says"),
    [
        ("nostr+walletconnect://x", "the NWC wallet's pubkey is 64 lower hex"),
        (f"nostr+walletconnect://{'a' * 64}?relay=ws://h:1", "the secret is 64 hex characters"),
        ("lnd:/nonexistent/devnet.json", "cannot read lnd connection file"),
        ("nwc:x", "use sim[:NAME], lnd:FILE[#NODE] or nostr+walletconnect://…"),
        ("paypal", "use sim[:NAME], lnd:FILE[#NODE] or nostr+walletconnect://…"),
    ],
)
def test_a_wallet_taskhold_cannot_use_is_refused_before_any_invoice_is_asked_for(
    server: Serve, employer: Path, wallet: str, says: str
) -> None:
    task_id = create(server, employer)

    ran = as_party(server, employer, "fund", task_id, "--wallet", wallet, "--json")

    assert ran.code == 2
    assert says in ran.stderr
    assert ran.json()["error"]["kind"] == "usage"
    shown = task_cli("show", task_id, "--server", server.url, "--json").json()
    assert shown["funding"] is None  # no hold invoice was made


def test_an_lnd_connection_file_with_several_nodes_needs_one_named(
    server: Serve, employer: Path, tmp_path: Path
) -> None:
    connection = tmp_path / "devnet.json"
    connection.write_text('{"nodes": {"employer": {}, "worker": {}}}')
    task_id = create(server, employer)

    ran = as_party(server, employer, "fund", task_id, "--wallet", f"lnd:{connection}")

    assert ran.code == 2
    assert f"name one as lnd:{connection}#NODE" in ran.stderr


def test_an_unreachable_server_is_exit_1_without_a_traceback() -> None:
    ran = task_cli("show", "t1", "--server", "http://127.0.0.1:9")
    as_json = task_cli("show", "t1", "--server", "http://127.0.0.1:9", "--json")

    assert ran.code == as_json.code == 1
    assert "cannot reach taskhold at http://127.0.0.1:9" in ran.stderr
    assert as_json.json()["error"]["kind"] == "unreachable"


def test_a_proof_needs_one_payout_invoice_source(worker: Path) -> None:
    ran = task_cli(
        "proof", "t1", "--field", "url=https://x", "--server", "http://127.0.0.1:9",
        "--key-file", str(worker),
    )  # fmt: skip
    assert ran.code == 2
    assert "give --invoice BOLT11, or --wallet to make one" in ran.stderr


def test_show_of_an_unknown_task_is_the_servers_not_found(server: Serve) -> None:
    ran = task_cli("show", "no-such-task", "--server", server.url)
    assert ran.code == 1
    assert "(not_found, HTTP 404)" in ran.stderr


def test_a_rejected_proof_is_disputed_by_the_worker_only_with_a_reason(
    server: Serve, employer: Path, worker: Path
) -> None:
    task_id = submitted(server, employer, worker)

    no_reason = as_party(server, employer, "reject", task_id)
    rejected = as_party(server, employer, "reject", task_id, "--reason", "the link is dead")
    disputed = as_party(server, worker, "dispute", task_id, "--reason", "it works", "--json")

    assert no_reason.code == 2  # --reason is required: a usage error, nothing sent
    assert rejected.code == 0, rejected.stderr
    assert disputed.code == 0, disputed.stderr
    task = disputed.json()
    assert task["state"] == "DISPUTED"
    assert task["rejection_reason"] == "the link is dead"


def test_show_opens_a_private_description_only_with_a_partys_key(
    server: Serve, employer: Path, worker: Path
) -> None:
    ran = as_party(
        server, employer, "create", "Audit", "--amount-sat", "1000", "--private",
        "--description", "the repo is at git.example/secret",
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    task_id = ran.stdout.strip()

    anyone = task_cli("show", task_id, "--server", server.url)
    stranger = as_party(server, worker, "show", task_id, "--json")
    party = as_party(server, employer, "show", task_id)

    assert "git.example/secret" not in anyone.stdout + stranger.stdout
    assert "description: (sealed" in anyone.stdout
    assert stranger.json()["opened_description"] is None
    assert "description: the repo is at git.example/secret" in party.stdout


def test_an_lnd_node_that_cannot_pay_is_exit_1_and_the_task_stays_unfunded(
    server: Serve, employer: Path, tmp_path: Path
) -> None:
    connection = tmp_path / "mine.json"
    node = {"rest_url": "https://127.0.0.1:9", "tls_cert_path": str(tmp_path / "no.cert")}
    node["macaroon_path"] = str(tmp_path / "no.macaroon")
    connection.write_text(json.dumps({"nodes": {"mine": node}}))  # one node: no #NODE needed
    task_id = create(server, employer)

    ran = as_party(server, employer, "fund", task_id, "--wallet", f"lnd:{connection}", "--json")

    assert ran.code == 1
    assert ran.json()["error"]["kind"] == "payment"
    assert "lnd node 'mine'" in ran.stderr
    shown = task_cli("show", task_id, "--server", server.url, "--json").json()
    assert shown["state"] == "PENDING_FUNDING"


def test_watch_on_the_public_log_shows_verified_transitions_until_paid(
    server: Serve, employer: Path, worker: Path
) -> None:
    task_id = submitted(server, employer, worker)
    assert as_party(server, employer, "approve", task_id, "--no-wait").code == 0

    ran = task_cli("watch", task_id, "--log", "--until", "PAID", "--server", server.url, "--json")

    assert ran.code == 0, ran.stderr
    paid = ran.json()
    assert paid["state"] == "PAID"
    shown = [line.split()[1] for line in ran.stderr.splitlines() if line.endswith("(verified)")]
    assert shown == [f"#{seq}" for seq in range(1, paid["version"] + 1)]  # the whole history
    assert f"{task_id} #1 TaskCreated (verified)" in ran.stderr


def test_watch_until_a_state_that_does_not_exist_is_a_usage_error(server: Serve) -> None:
    ran = task_cli("watch", "t1", "--until", "PAYED", "--server", server.url)
    assert ran.code == 2
    assert "--until PAYED: no such state" in ran.stderr


def test_fund_by_a_key_that_is_not_the_employer_is_refused_and_pays_nothing(
    server: Serve, employer: Path, worker: Path
) -> None:
    task_id = create(server, employer)
    before = balances(server)

    ran = as_party(server, worker, "fund", task_id, "--wallet", "sim:worker", "--json")

    assert ran.code == 1
    assert ran.json()["error"]["code"] == "wrong_role"
    assert balances(server) == before
    shown = task_cli("show", task_id, "--server", server.url, "--json").json()
    assert (shown["state"], shown["funding"]) == ("DRAFT", None)
