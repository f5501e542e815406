"""``taskhold audit`` against real relays: nostr-sdk's LocalRelay in its own process, the log
published to it over NIP-01, then read back by the auditor's own websocket client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.audit_logs import RealLog, build_real_log, tag
from support.relay_process import publish, relay_processes
from support.stacks import Stack
from typer.testing import CliRunner
from websockets.asyncio.server import ServerConnection, serve

from taskhold.audit import FetchSettings, audit_log, fetch_log, parallel
from taskhold.cli import cli
from taskhold.keys.signer import load_or_create_key_file
from taskhold.nostr import NostrKeys


@pytest.fixture
def start_relay() -> Iterator[Callable[[], str]]:
    """Starts LocalRelays (each in its own process) and stops them after the test."""
    with relay_processes() as start:
        yield start


async def run_audit(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["audit", *args])
    return result.exit_code, result.stdout


async def audit_json(*args: str) -> tuple[int, dict[str, Any]]:
    code, out = await run_audit(*args, "--json")
    return code, json.loads(out)


def operator_keys(log: RealLog) -> NostrKeys:
    """The operator's key pair from the file key store, for what its signer will not sign
    (a NIP-09 deletion)."""
    keys = load_or_create_key_file(log.stack.settings.data_dir / "keys" / "operator.key")
    assert keys.pubkey_hex == log.operator
    return keys


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


@pytest.fixture
async def real_log(stack: Stack) -> RealLog:
    return await build_real_log(stack)


async def test_clean_on_the_relay_then_a_deleted_entry_is_a_gap(
    real_log: RealLog, start_relay: Callable[[], str]
) -> None:
    url = start_relay()
    await publish(url, real_log.entries)
    npub = operator_keys(real_log).npub

    code, report = await audit_json("--relay", url, "--operator", npub)
    assert (code, report["status"], report["findings"]) == (0, "clean", [])
    assert report["payout_proven"] is True
    assert report["summary"]["payouts"] == report["summary"]["payouts_proven"] > 0
    assert report["summary"]["entries"] == len(real_log.entries)
    assert report["summary"]["head_gseq"] == len(real_log.entries) - 1
    assert report["relays"][0]["ok"] is True

    target = real_log.entry("SubmissionRejected")
    gseq = int(tag(target, "gseq") or "")
    deletion = operator_keys(real_log).sign_event(
        5, "", [["e", target["id"]]], target["created_at"]
    )
    await publish(url, [deletion])

    code, report = await audit_json("--relay", url, "--operator", npub)
    assert (code, report["status"]) == (1, "findings")
    assert report["summary"]["entries"] == len(real_log.entries) - 1
    by_kind = {f["kind"]: f for f in report["findings"]}
    assert set(by_kind) == {"gap", "seq_gap", "operator_deletion"}
    assert by_kind["gap"]["location"] == {"gseq": gseq, "gseq_last": gseq}
    assert target["id"] in by_kind["operator_deletion"]["event_ids"]

    code, text = await run_audit("--relay", url, "--operator", npub)
    assert code == 1
    assert "gap" in text and f"gseq {gseq}" in text


async def test_equivocation_served_by_a_second_relay_is_reported(
    real_log: RealLog, start_relay: Callable[[], str]
) -> None:
    honest, other = start_relay(), start_relay()
    original = real_log.entry("FundingAccepted")
    forged = real_log.sign(
        original["content"],
        [["state", "00" * 32] if t[0] == "state" else t for t in original["tags"]],
        original["created_at"],
    )
    await publish(honest, real_log.entries)
    await publish(other, [forged])

    code, report = await audit_json(
        "--relay", honest, "--relay", other, "--operator", real_log.operator
    )
    assert code == 1
    (finding,) = report["findings"]
    assert finding["kind"] == "equivocation"
    assert finding["location"] == {"gseq": int(tag(original, "gseq") or "")}
    assert set(finding["event_ids"]) == {original["id"], forged["id"]}
    assert [r["entries"] for r in report["relays"]] == [len(real_log.entries), 1]


async def test_jobs_spread_the_audit_and_the_report_stays_the_same(
    real_log: RealLog, start_relay: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = start_relay()
    original = real_log.entry("FundingAccepted")
    forged = real_log.sign(
        original["content"],
        [["state", "00" * 32] if t[0] == "state" else t for t in original["tags"]],
        original["created_at"],
    )
    await publish(url, [*real_log.entries, forged])
    serial = await audit_json("--relay", url, "--operator", real_log.operator, "--jobs", "1")
    monkeypatch.setattr(parallel, "MIN_EVENTS_PER_JOB", 1)  # a small log is cut in chunks
    spread = await audit_json("--relay", url, "--operator", real_log.operator, "--jobs", "2")
    assert spread == serial
    assert serial[0] == 1 and [f["kind"] for f in serial[1]["findings"]] == ["equivocation"]
    refused = CliRunner().invoke(cli, ["audit", "--relay", url, "--operator", "x", "--jobs", "0"])
    assert refused.exit_code == 2 and "--jobs" in refused.output


async def test_relays_down_or_silent_are_reported_not_fatal(
    real_log: RealLog, start_relay: Callable[[], str]
) -> None:
    live, dead = start_relay(), closed_port_url()
    await publish(live, real_log.entries)

    code, report = await audit_json("--relay", dead, "--operator", real_log.operator)
    assert (code, report["status"], report["summary"]) == (2, "no_relay", None)
    assert report["relays"][0]["ok"] is False and report["relays"][0]["error"]

    code, report = await audit_json(
        "--relay", dead, "--relay", live, "--operator", real_log.operator
    )
    assert (code, report["status"]) == (0, "clean")
    assert [r["ok"] for r in report["relays"]] == [False, True]

    async def never_answer(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(never_answer, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        silent = f"ws://127.0.0.1:{port}"
        code, report = await audit_json(
            "--relay", silent, "--operator", real_log.operator, "--timeout", "0.5"
        )
    assert code == 2
    assert "timed out" in report["relays"][0]["error"]

    code, _ = await run_audit("--relay", live, "--operator", "npub1notakey")
    assert code == 2


async def test_small_batches_and_capped_answers_still_read_everything(
    real_log: RealLog, start_relay: Callable[[], str]
) -> None:
    url = start_relay()
    await publish(url, real_log.entries)
    settings = FetchSettings(batch_size=7, relay_cap=5, timeout_s=10)
    fetched = await fetch_log([url], real_log.operator, settings=settings)

    assert fetched.readable
    assert sorted(e["id"] for e in fetched.entries) == sorted(e["id"] for e in real_log.entries)
    # Every batch of 7 came back with more than the cap of 5, so each was split and re-asked.
    batches = len(real_log.entries) // 7 + 1
    assert fetched.relays[0].requests >= 3 + 2 * batches
    assert audit_log(fetched.entries, real_log.operator).clean


@pytest.mark.slow
async def test_a_log_longer_than_the_relay_cap_is_read_whole(
    stack: Stack, start_relay: Callable[[], str]
) -> None:
    log = await build_real_log(stack, rounds=11)
    assert len(log.entries) > 550
    url = start_relay()
    await publish(url, log.entries)

    code, report = await audit_json("--relay", url, "--operator", log.operator)
    assert (code, report["status"]) == (0, "clean"), report["findings"][:5]
    assert report["summary"]["entries"] == len(log.entries)
