"""README command 1: ``taskhold demo --json`` ends PAID with sha256(preimage) == payment_hash;
every ``--scenario`` names itself, shows its figures, and leaves a log ``taskhold audit`` passes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from support.demo_runs import audit_demo_log as _audit
from typer.testing import CliRunner

from taskhold.cli import cli
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.relays import RelayPool


def _refused(*args: str) -> list[str]:
    """The lines of a refused command's stderr, on a narrow terminal: exit code 2, no
    traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "taskhold.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "30"},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


def _demo(tmp_path: Path, *extra: str) -> dict[str, object]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskhold.cli",
            "demo",
            "--json",
            "--data-dir",
            str(tmp_path),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return dict(json.loads(lines[0]))


def test_demo_json_ends_paid_with_matching_preimage(tmp_path: Path) -> None:
    out = _demo(tmp_path)
    assert out["final_state"] == "PAID"
    for field in ("task_id", "payment_hash", "preimage", "employer_pubkey", "worker_pubkey"):
        assert isinstance(out[field], str) and len(str(out[field])) == 64
    assert hashlib.sha256(bytes.fromhex(str(out["preimage"]))).hexdigest() == out["payment_hash"]
    assert out["amount_msat"] == 150_000_000


def test_demo_refund_variant_ends_refunded(tmp_path: Path) -> None:
    out = _demo(tmp_path, "--refund")
    assert (out["scenario"], out["final_state"]) == ("refund", "REFUNDED")
    assert out["preimage"] is None


def test_demo_scenario_refund_ends_refunded_and_names_itself(tmp_path: Path) -> None:
    out = _demo(tmp_path, "--scenario", "refund")
    assert (out["scenario"], out["final_state"], out["preimage"]) == ("refund", "REFUNDED", None)
    assert isinstance(out["operator_pubkey"], str) and len(out["operator_pubkey"]) == 64
    assert isinstance(out["relay_url"], str) and out["relay_url"].startswith("ws://")


async def test_demo_hostile_payout_refuses_the_bait_and_the_operator_gains_only_its_fee(
    tmp_path: Path,
) -> None:
    out = _demo(tmp_path, "--scenario", "hostile-payout")
    assert (out["scenario"], out["final_state"]) == ("hostile-payout", "PAID")
    assert out["refused_code"] in {"payout_to_escrow_node", "hash_reused"}
    fee, amount = out["fee_msat"], out["amount_msat"]
    assert isinstance(fee, int) and isinstance(amount, int) and fee > 0
    # The escrow node ends richer by exactly the fee: it paid nothing out of its own pocket.
    assert out["operator_balance_change_msat"] == fee
    assert out["worker_paid_msat"] == out["payout_msat"] == amount - fee
    assert out["employer_paid_msat"] == amount

    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])
    assert report["summary"]["tasks"] == 2  # the paid task and the cancelled bait


async def test_demo_default_scenario_log_passes_the_audit(tmp_path: Path) -> None:
    out = _demo(tmp_path)
    assert out["scenario"] == "paid"
    log_ids = out["log_event_ids"]
    assert isinstance(log_ids, list)
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["summary"]["entries"]) == (0, "clean", len(log_ids))
    # The worker's payout is proven by the preimage the settlement entry reveals.
    assert out["payout_proven"] is True
    assert report["payout_proven"] is True and report["summary"]["payouts_proven"] == 1


async def test_demo_squatter_is_revoked_and_the_second_worker_paid_and_the_log_audits(
    tmp_path: Path,
) -> None:
    out = _demo(tmp_path, "--scenario", "squatter")
    assert (out["scenario"], out["final_state"]) == ("squatter", "PAID")
    revoked, paid = out["revoked_worker_pubkey"], out["paid_worker_pubkey"]
    assert isinstance(revoked, str) and re.fullmatch("[0-9a-f]{64}", revoked)
    assert paid == out["worker_pubkey"] != revoked
    assert hashlib.sha256(bytes.fromhex(str(out["preimage"]))).hexdigest() == out["payment_hash"]
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])
    assert report["summary"]["entries"] == len(out["log_event_ids"])  # type: ignore[arg-type]


async def test_demo_reject_overturned_pays_the_worker_and_audits_clean(tmp_path: Path) -> None:
    out = _demo(tmp_path, "--scenario", "reject-overturned")
    assert (out["scenario"], out["final_state"]) == ("reject-overturned", "PAID")
    assert out["worker_received_msat"] == out["payout_msat"]
    assert len(str(out["arbiter_pubkey"])) == 64 and str(out["relay_url"]).startswith("ws://")
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])


async def test_demo_cooperative_cancel_leaves_the_employer_whole_and_audits_clean(
    tmp_path: Path,
) -> None:
    out = _demo(tmp_path, "--scenario", "cooperative-cancel")
    assert (out["scenario"], out["final_state"]) == ("cooperative-cancel", "REFUNDED")
    assert out["employer_balance_change_msat"] == 0
    assert out["worker_received_msat"] == 0
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])


async def test_demo_paused_intake_refuses_a_new_task_pays_the_claimed_one_and_audits_clean(
    tmp_path: Path,
) -> None:
    out = _demo(tmp_path, "--scenario", "paused-intake")
    assert (out["scenario"], out["final_state"]) == ("paused-intake", "PAID")
    assert (out["refused_code"], out["retry_after_s"]) == ("intake_paused", 300)
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])


async def test_demo_moderation_refuses_the_blocked_key_delists_and_still_pays(
    tmp_path: Path,
) -> None:
    """A block never locks money a task owes: the blocked worker is paid all the same."""
    out = _demo(tmp_path, "--scenario", "moderation")
    assert (out["scenario"], out["final_state"]) == ("moderation", "PAID")
    assert out["refused_code"] == "blocked_key"
    assert (out["listed_before"], out["listed_after"]) == (True, False)
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])


async def test_demo_jurisdiction_refuses_the_blocked_range_and_pays_the_open_one(
    tmp_path: Path,
) -> None:
    out = _demo(tmp_path, "--scenario", "jurisdiction")
    assert (out["scenario"], out["final_state"]) == ("jurisdiction", "PAID")
    assert out["blocked_networks"] == ["203.0.113.0/24"]
    assert (out["refused_status"], out["refused_code"]) == (451, "blocked_jurisdiction")
    assert out["payout_proven"] is True
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])


def test_demo_says_it_configured_an_arbiter(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "arbiter" in result.output and "configured" in result.output


def test_demo_unknown_scenario_lists_the_names_on_one_line(tmp_path: Path) -> None:
    lines = _refused("demo", "--scenario", "nonsense", "--data-dir", str(tmp_path))
    message = (
        "Invalid value for --scenario: use one of paid, refund, hostile-payout, squatter,"
        " split, reject-overturned, cooperative-cancel"
    )
    assert any(message in line for line in lines), lines


def test_demo_hostile_payout_refuses_the_devnet_on_one_line(tmp_path: Path) -> None:
    args = ["demo", "--scenario", "hostile-payout", "--lightning", "devnet"]
    lines = _refused(*args, "--devnet-dir", str(tmp_path / "devnet"), "--data-dir", str(tmp_path))
    message = "Invalid value for --lightning: hostile-payout runs on sim only"
    assert any(message in line for line in lines), lines


def test_demo_refund_flag_with_another_scenario_is_refused(tmp_path: Path) -> None:
    args = ["demo", "--refund", "--scenario", "hostile-payout", "--data-dir", str(tmp_path)]
    assert any("--refund is --scenario refund" in line for line in _refused(*args))


async def test_demo_json_names_the_log_and_publishes_it_before_exiting(tmp_path: Path) -> None:
    out = _demo(tmp_path)
    operator, relay_url, log_ids = out["operator_pubkey"], out["relay_url"], out["log_event_ids"]
    assert isinstance(operator, str) and re.fullmatch("[0-9a-f]{64}", operator)
    assert isinstance(relay_url, str) and relay_url.startswith("ws://127.0.0.1:")
    assert isinstance(log_ids, list) and len(log_ids) >= 7
    assert all(re.fullmatch("[0-9a-f]{64}", str(event_id)) for event_id in log_ids)

    # The demo waited for the relay's acks: its LMDB in the data directory holds every entry.
    relay = EmbeddedRelay(tmp_path)
    pool = RelayPool()
    try:
        await pool.connect([await relay.start()])
        log = await pool.fetch_log(operator, 3910, range(len(log_ids)))
    finally:
        await pool.close()
        await relay.stop()
    assert [event["id"] for event in log] == log_ids


async def test_demo_split_pays_both_wallets_their_shares_and_its_log_passes_the_audit(
    tmp_path: Path,
) -> None:
    out = _demo(tmp_path, "--scenario", "split")
    assert (out["scenario"], out["final_state"]) == ("split", "PAID")
    assert isinstance(out["relay_url"], str) and out["relay_url"].startswith("ws://")
    worker, employer = out["worker_received_msat"], out["employer_refunded_msat"]
    fee, amount = out["fee_msat"], out["amount_msat"]
    assert isinstance(worker, int) and isinstance(employer, int) and isinstance(fee, int)
    # measured from the wallets: the shares as ruled, and with the fee they make the amount
    assert (worker, employer) == (out["split_worker_msat"], out["split_employer_msat"])
    assert worker + employer + fee == amount
    assert worker == (amount - fee) * 60 // 100
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])


async def test_demo_milestones_renews_and_pays_three_sequential_milestones_and_audits_clean(
    tmp_path: Path,
) -> None:
    out = _demo(tmp_path, "--scenario", "milestones")
    assert (out["scenario"], out["final_state"]) == ("milestones", "PAID")
    assert isinstance(out["operator_pubkey"], str) and len(out["operator_pubkey"]) == 64
    assert isinstance(out["relay_url"], str) and out["relay_url"].startswith("ws://")
    milestones = out["milestones"]
    assert isinstance(milestones, list) and len(milestones) == 3
    assert [m["state"] for m in milestones] == ["PAID"] * 3
    assert len({m["payment_hash"] for m in milestones}) == 3  # one hold invoice each
    for milestone in milestones:
        preimage = bytes.fromhex(milestone["preimage"])
        assert hashlib.sha256(preimage).hexdigest() == milestone["payment_hash"]
    rounds = out["rounds"]
    assert isinstance(rounds, list) and len(rounds) == 3
    for milestone, funding_rounds in zip(milestones, rounds, strict=True):
        # each milestone outlasts one hold: renewed once, its second round settled
        assert [r["funding_round"] for r in funding_rounds] == [1, 2]
        assert [r["state"] for r in funding_rounds] == ["CANCELED", "SETTLED"]
        assert funding_rounds[-1]["payment_hash"] == milestone["payment_hash"]
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])
    assert report["summary"]["tasks"] == 3


async def test_demo_renewal_renews_twice_settles_the_last_round_and_audits_clean(
    tmp_path: Path,
) -> None:
    out = _demo(tmp_path, "--scenario", "renewal")
    assert (out["scenario"], out["final_state"]) == ("renewal", "PAID")
    assert out["operator_pubkey"] and out["relay_url"]
    rounds = out["rounds"]
    assert isinstance(rounds, list)
    assert [r["funding_round"] for r in rounds] == [1, 2, 3]
    assert [r["state"] for r in rounds] == ["CANCELED", "CANCELED", "SETTLED"]
    assert len({r["payment_hash"] for r in rounds}) == 3
    preimage = str(out["preimage"])
    assert hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == rounds[-1]["payment_hash"]
    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])


def test_the_onchain_demo_needs_the_devnet(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskhold.cli", "demo", "--scenario", "onchain",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "devnet only" in result.stderr and "Traceback" not in result.stderr


def _pool_demo(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskhold.cli", "demo", "--scenario", "pool",
         "--data-dir", str(tmp_path / "demo"), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_pool_demo_needs_the_devnet(tmp_path: Path) -> None:
    result = _pool_demo(tmp_path)
    assert result.returncode == 1
    assert "devnet only" in result.stderr and "Traceback" not in result.stderr


def test_the_pool_demo_on_a_devnet_with_one_escrow_node_says_how_to_start_two(
    tmp_path: Path,
) -> None:
    """Refused before any node is called: the devnet's file lists one escrow node."""
    devnet = tmp_path / "devnet"
    devnet.mkdir()
    (devnet / "devnet.json").write_text(json.dumps({"escrow_nodes": ["escrow"], "nodes": {}}))
    result = _pool_demo(tmp_path, "--lightning", "devnet", "--devnet-dir", str(devnet))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "devnet up --escrow-nodes 2" in " ".join(result.stderr.split())
