"""``taskhold demo --scenario task-cli``: the participants' command line plays both parties with
key files, one ``taskhold task`` process per step, to PAID; the JSON names the scenario, gives
its figures and the commands run, and the log it leaves passes ``taskhold audit``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.demo_runs import audit_demo_log

pytestmark = [pytest.mark.slow]


async def test_the_task_cli_scenario_ends_paid_through_the_commands_and_audits_clean(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskhold.cli", "demo", "--json", "--data-dir", str(tmp_path),
         "--scenario", "task-cli"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    out = json.loads(line)

    assert (out["scenario"], out["final_state"]) == ("task-cli", "PAID")
    assert out["relay_url"].startswith("ws://") and len(out["operator_pubkey"]) == 64
    assert hashlib.sha256(bytes.fromhex(out["preimage"])).hexdigest() == out["payment_hash"]
    assert out["payout_msat"] == out["amount_msat"] - out["fee_msat"]
    steps = [command.split()[2] for command in out["commands"]]
    assert steps == ["keygen", "keygen", "create", "fund", "claim", "proof", "approve"]
    # the key files keygen made are readable by their owner only
    assert (tmp_path / "participants" / "employer.key").stat().st_mode & 0o077 == 0
    code, report = await audit_demo_log(tmp_path, out["operator_pubkey"])
    assert (code, report["status"], report["findings"]) == (0, "clean", [])
    assert report["payout_proven"] is True
    assert out["payout_proven"] is True
