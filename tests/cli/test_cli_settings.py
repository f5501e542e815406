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
