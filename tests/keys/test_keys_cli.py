"""``taskhold keys init|status|rotate`` and ``demo --keystore pkcs11`` in fresh processes, each
data directory with a SoftHSM2 token of its own: nothing secret is ever printed or stored."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support.keystores import REQUIRE_PKCS11, run_taskhold

pytestmark = pytest.mark.skipif(
    shutil.which("softhsm2-util") is None and not REQUIRE_PKCS11, reason="softhsm2 not installed"
)


def _env() -> dict[str, str]:
    """No SOFTHSM2_CONF and no PIN: ``keys init`` makes the token under the data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFTHSM2", "TASKHOLD_"))}
    env["TASKHOLD_KEYSTORE"] = "pkcs11"
    return env


def _operator_secret(data_dir: Path) -> str:
    """The sealed operator key, unsealed by a helper process (the test needs to look for it)."""
    code = (
        "import sys; from pathlib import Path\n"
        "from taskhold.settings import Settings\n"
        "from taskhold.keys.stores import open_key_store\n"
        "from taskhold.keys.operator import load_operator_keys\n"
        "d = Path(sys.argv[1]); s = open_key_store(Settings(data_dir=d))\n"
        "print(load_operator_keys(s, d).secret_hex_unsafe())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        env=_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def _database_bytes(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / "taskhold.sqlite3") as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(str(db.execute(f"SELECT * FROM {t}").fetchall()) for t in tables)


def test_init_makes_a_dev_token_once_and_status_shows_no_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = run_taskhold("keys", "init", "--data-dir", str(data), env=_env())
    assert "SoftHSM2 token 'taskhold' created" in first.stdout
    assert "production" in first.stderr.lower() and "TASKHOLD_PKCS11_MODULE" in first.stderr
    assert "taskhold-preimage-v1" in first.stdout and "operator key" in first.stdout
    assert (data / "softhsm2" / "softhsm2.conf").exists()
    pin = (data / "keys" / "pkcs11.pin").read_text().strip()
    assert oct((data / "keys" / "pkcs11.pin").stat().st_mode & 0o777) == "0o600"

    again = run_taskhold("keys", "init", "--data-dir", str(data), env=_env())
    assert "found" in again.stdout and "created: nothing" in again.stdout
    pubkey = first.stdout.split("operator pubkey: ")[1].split()[0]
    assert f"operator pubkey: {pubkey}" in again.stdout

    status = run_taskhold("keys", "status", "--json", "--data-dir", str(data), env=_env())
    shown = json.loads(status.stdout)
    keys = {key["label"]: key for key in shown["token_keys"]}
    for label in ("taskhold-preimage-v1", "taskhold-seal-v1"):
        assert keys[label]["extractable"] is False
        assert keys[label]["sensitive"] is True
        assert keys[label]["never_extractable"] is True
    assert shown["sealed"] == ["operator"]

    secret = _operator_secret(data)
    plain_status = run_taskhold("keys", "status", "--data-dir", str(data), env=_env())
    printed = first.stdout + first.stderr + again.stdout + status.stdout + plain_status.stdout
    assert pin not in printed and secret not in printed
    assert pin not in _database_bytes(data) and secret not in _database_bytes(data)
    verify = run_taskhold("audit-log", "verify", "--data-dir", str(data), env=_env())
    assert "chain: ok" in verify.stdout


def test_rotate_changes_the_key_keeps_the_old_and_the_log_verifies(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init = run_taskhold("keys", "init", "--data-dir", str(data), env=_env())
    before = init.stdout.split("operator pubkey: ")[1].split()[0]
    rotated = run_taskhold("keys", "rotate", "--data-dir", str(data), env=_env())
    old = rotated.stdout.split("old operator pubkey: ")[1].split()[0]
    new = rotated.stdout.split("new operator pubkey: ")[1].split()[0]
    assert old == before and new != before and len(new) == 64
    status = json.loads(
        run_taskhold("keys", "status", "--json", "--data-dir", str(data), env=_env()).stdout
    )
    assert status["sealed"] == ["operator", "operator.previous"]
    verify = run_taskhold("audit-log", "verify", "--data-dir", str(data), env=_env())
    assert "chain: ok" in verify.stdout
    with sqlite3.connect(data / "taskhold.sqlite3") as db:
        rows = db.execute("SELECT actor, details FROM audit_log WHERE action = 'keys.rotate'")
        [(actor, details)] = rows.fetchall()
        [(raw,)] = db.execute("SELECT raw FROM log_entries").fetchall()
        [(queued,)] = db.execute("SELECT event_id FROM outbox").fetchall()
        signs = db.execute("SELECT details FROM audit_log WHERE action = 'key.sign'").fetchall()
    assert actor.startswith("admin:")
    assert json.loads(details) == {"old_pubkey": old, "new_pubkey": new}
    rotation = json.loads(raw)  # the KeyRotated entry, signed by the old key, queued to publish
    assert rotation["pubkey"] == old and queued == rotation["id"]
    assert ["op", "KeyRotated"] in rotation["tags"] and ["new_key", new] in rotation["tags"]
    assert [json.loads(d)["pubkey"] for (d,) in signs] == [old]  # the signature is audited
    secret = _operator_secret(data)
    assert secret not in rotated.stdout + rotated.stderr + _database_bytes(data)


def test_rotate_without_a_key_store_fails_cleanly(tmp_path: Path) -> None:
    result = run_taskhold("keys", "rotate", "--data-dir", str(tmp_path), env=_env(), check=False)
    assert result.returncode == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_on_a_pkcs11_token_leaks_no_secret(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    demo = run_taskhold(
        "demo", "--keystore", "pkcs11", "--json", "--data-dir", str(data), env=_env()
    )
    result = json.loads(demo.stdout)
    assert result["final_state"] == "PAID"
    assert (data / "softhsm2" / "softhsm2.conf").exists()  # made under the data directory
    pin = (data / "keys" / "pkcs11.pin").read_text().strip()
    secret = _operator_secret(data)
    assert result["operator_pubkey"] not in (secret, "")
    everything = demo.stdout + demo.stderr + _database_bytes(data)
    assert pin not in everything and secret not in everything
    verify = run_taskhold("audit-log", "verify", "--data-dir", str(data), env=_env())
    assert "chain: ok" in verify.stdout
