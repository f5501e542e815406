"""`serve --config FILE`: flags win over TASKHOLD_* variables, which win over the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from taskhold.cli import _settings


def test_config_file_flags_and_environment_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "taskhold.env"
    config.write_text("TASKHOLD_FEE_PPM=2500\nTASKHOLD_PORT=9000\nTASKHOLD_ARBITERS=aa,bb\n")
    settings = _settings(None, config)
    assert (settings.fee_ppm, settings.port, settings.arbiters) == (2500, 9000, ["aa", "bb"])
    monkeypatch.setenv("TASKHOLD_FEE_PPM", "3000")
    settings = _settings(tmp_path / "d", config, port=9100)
    assert (settings.fee_ppm, settings.port, settings.data_dir) == (3000, 9100, tmp_path / "d")


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(typer.BadParameter, match="no such file"):
        _settings(None, tmp_path / "missing.env")


def test_a_pool_of_lnd_nodes_from_the_flag(tmp_path: Path) -> None:
    settings = _settings(None, lightning="lnd", lnd_pool=f"escrow,{tmp_path}/devnet.json#escrow-2")
    assert settings.lnd_pool == ["escrow", f"{tmp_path}/devnet.json#escrow-2"]


@pytest.mark.parametrize(
    ("lightning", "pool", "said"),
    [
        ("sim", "escrow,escrow-2", "needs lightning=lnd"),
        ("lnd", "escrow,devnet.json#", "names a node"),
        ("lnd", "escrow,escrow", "names a node twice"),
    ],
)
def test_a_bad_pool_is_a_clear_error(lightning: str, pool: str, said: str) -> None:
    with pytest.raises(typer.BadParameter, match=said):
        _settings(None, lightning=lightning, lnd_pool=pool)
