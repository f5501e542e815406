"""``taskhold demo --scenario private --json``: the secret marker put into the description and
the proof, and the worker's payout invoice (sent sealed to the operator), are on no relay, in
no log line and in no file of the data directory; the log carries the commitments and the
payout's signed hash, audits clean and proves the payout."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from test_demo import _audit

from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.relays import RelayPool


async def _relay_events(data_dir: Path) -> list[dict[str, object]]:
    """Every event the demo's relay holds, served again from its LMDB."""
    relay = EmbeddedRelay(data_dir)
    url = await relay.start()
    pool = RelayPool()
    try:
        await pool.connect([url])
        return await pool.fetch({"limit": 500})
    finally:
        await pool.close()
        await relay.stop()


async def test_the_private_demo_keeps_its_marker_off_the_relay_and_out_of_the_logs(
    tmp_path: Path,
) -> None:
    args = ["demo", "--json", "--data-dir", str(tmp_path), "--scenario", "private"]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "taskhold.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    marker = out["secret_marker"]
    assert (out["scenario"], out["final_state"], out["visibility"]) == (
        "private",
        "PAID",
        "private",
    )
    assert out["operator_pubkey"] and str(out["relay_url"]).startswith("ws://")
    assert len(marker) == 32
    assert marker not in result.stderr
    assert marker not in result.stdout.replace(f'"secret_marker": "{marker}"', "")
    invoice = str(out["payout_invoice"])
    assert invoice.startswith("lnbc") and out["payout_invoice_sealed"] is True
    assert out["payout_proven"] is True
    assert invoice not in result.stderr
    assert invoice not in result.stdout.replace(f'"payout_invoice": "{invoice}"', "")

    events = await _relay_events(tmp_path)
    relay_text = json.dumps(events)
    assert marker not in relay_text and invoice not in relay_text
    assert "payout_invoice_sealed" in relay_text
    assert out["details_hash"] in relay_text and out["proof_hash"] in relay_text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path
            # the simulated Lightning network is the payee's own wallet too: it made the invoice
            if path.name != "sim-network.json":
                assert invoice.encode() not in path.read_bytes(), path

    code, report = await _audit(tmp_path, str(out["operator_pubkey"]))
    assert (code, report["status"], report["findings"]) == (0, "clean", [])
