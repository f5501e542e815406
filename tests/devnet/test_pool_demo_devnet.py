"""``taskhold demo --scenario pool --lightning devnet --json`` on the run's pool devnet (two lnd
escrow nodes): four tasks placed over both nodes, all paid, and the log audits clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.demo_runs import audit_demo_log
from support.devnet_network import get_pool_devnet

pytestmark = [pytest.mark.devnet, pytest.mark.slow, pytest.mark.pool_devnet]


async def test_the_pool_demo_spreads_four_tasks_over_both_nodes_and_audits_clean(
    tmp_path: Path,
) -> None:
    devnet = get_pool_devnet()
    command = [
        sys.executable, "-m", "taskhold.cli", "demo", "--json", "--scenario", "pool",
        "--lightning", "devnet", "--devnet-dir", str(devnet.data_dir),
        "--data-dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert (out["scenario"], out["final_state"], out["escrow_backend"]) == ("pool", "PAID", "lnd")
    assert len(out["final_states"]) == 4
    assert set(out["final_states"].values()) == {"PAID"}
    assert set(out["tasks_per_node"]) == {"escrow", "escrow-2"}
    assert sum(out["tasks_per_node"].values()) == 4
    assert min(out["tasks_per_node"].values()) >= 1  # both nodes held tasks
    assert len(out["operator_pubkey"]) == 64 and out["relay_url"].startswith("ws://")
    code, report = await audit_demo_log(tmp_path, out["operator_pubkey"])
    assert (code, report["status"], report["findings"]) == (0, "clean", [])
    assert report["summary"]["payouts"] == 4
