"""``taskhold devnet``: finding binaries, a repeated ``up``, and a ``down`` that leaves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.devnet_network import DevnetHandle, get_devnet
from typer.testing import CliRunner

from taskhold.devnet import control
from taskhold.devnet.binaries import BUILD_SCRIPT, find_bin_dir
from taskhold.devnet.cli import devnet_app
from taskhold.devnet.layout import NODE_NAMES, Layout, ports_free

runner = CliRunner()


def _text(output: str) -> str:
    """Rich wraps long lines; compare words."""
    return " ".join(output.split())


def test_status_of_an_empty_data_dir_says_not_running(tmp_path: Path) -> None:
    result = runner.invoke(devnet_app, ["status", "--data-dir", str(tmp_path)])

    assert result.exit_code == 3
    assert "not running" in _text(result.output)


def test_up_without_binaries_says_how_to_build_them(tmp_path: Path) -> None:
    result = runner.invoke(
        devnet_app, ["up", "--data-dir", str(tmp_path / "net"), "--bin-dir", str(tmp_path)]
    )

    assert result.exit_code == 1
    assert "scripts/build-lnd" in _text(result.output)
    assert not (tmp_path / "net" / "pids").exists()


def test_mine_without_a_devnet_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(devnet_app, ["mine", "3", "--data-dir", str(tmp_path)])

    assert result.exit_code == 1
    assert "taskhold devnet up" in _text(result.output)


def test_restart_without_a_devnet_or_of_an_unknown_node_is_refused(tmp_path: Path) -> None:
    bin_dir = ["--bin-dir", str(tmp_path)]
    result = runner.invoke(devnet_app, ["restart", "escrow", "--data-dir", str(tmp_path), *bin_dir])
    assert result.exit_code == 1
    assert "taskhold devnet up" in _text(result.output)

    result = runner.invoke(devnet_app, ["restart", "alice", "--data-dir", str(tmp_path), *bin_dir])
    assert result.exit_code == 1
    assert "escrow, employer, worker" in _text(result.output)


def test_the_python_lookup_uses_the_build_script_s_cache_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKHOLD_BIN_DIR", raising=False)
    printed = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()

    assert "/lnd-v" in printed
    try:
        assert find_bin_dir() == Path(printed)
    except control.DevnetError as missing:
        assert printed in str(missing)


@pytest.mark.devnet
async def test_a_second_up_is_a_no_op(devnet: DevnetHandle) -> None:
    steps: list[str] = []

    await control.up(devnet.data_dir, bin_dir=find_bin_dir(), progress=steps.append)

    assert steps == ["devnet already running"]
    assert (await control.status(devnet.data_dir))["running"]


@pytest.mark.devnet
@pytest.mark.slow
def test_up_then_down_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    get_devnet()  # binaries present (else skipped), and a base port distinct from the shared one
    data_dir = tmp_path / "net"
    base_port = next(port for port in range(27100, 29000, 100) if not ports_free(port))
    cli = [sys.executable, "-m", "taskhold.devnet.cli"]

    try:
        subprocess.run(
            [*cli, "up", "--data-dir", str(data_dir), "--base-port", str(base_port)], check=True
        )
        layout = Layout(data_dir, base_port)
        pids = [int(layout.pid_path(name).read_text().split()[0]) for name in layout.process_names]
        assert len(pids) == 1 + len(NODE_NAMES) + 1  # btcd, the lnd nodes, the swap server
        assert not layout.signer.lnd_dir.exists()  # no `--remote-signer`: no signer lnd
        assert (data_dir / "devnet.json").exists()
    finally:
        subprocess.run([*cli, "down", "--data-dir", str(data_dir)], check=True)

    assert not any(Path(f"/proc/{pid}").exists() and _not_zombie(pid) for pid in pids)
    assert ports_free(base_port) == []
    assert not (data_dir / "devnet.json").exists()


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_find_bin_dir_honours_the_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in control.BINARIES:
        (tmp_path / name).write_text("")
    monkeypatch.setenv("TASKHOLD_BIN_DIR", str(tmp_path))

    assert find_bin_dir() == tmp_path
    assert os.environ["TASKHOLD_BIN_DIR"] == str(tmp_path)
