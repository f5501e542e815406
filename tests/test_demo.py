"""README command 1: ``taskhold demo --json`` ends PAID with sha256(preimage) == payment_hash."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.relays import RelayPool


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
    assert out["final_state"] == "REFUNDED"
    assert out["preimage"] is None


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
