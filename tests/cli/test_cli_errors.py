"""Error messages are never wrapped to the terminal: a path or a command in them stays on one
line, however narrow the terminal and however long the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import isolated_logging  # noqa: F401
from typer.testing import CliRunner

from taskhold.cli import cli

pytestmark = pytest.mark.usefixtures("isolated_logging")

NARROW = {"COLUMNS": "30"}


def _long_dir(tmp_path: Path) -> Path:
    return tmp_path / ("a-very-long-directory-name-" * 6) / "none"


def test_the_demo_names_the_command_to_start_a_devnet_on_one_line(tmp_path: Path) -> None:
    devnet_dir = _long_dir(tmp_path)
    command = [sys.executable, "-m", "taskhold.cli", "demo", "--lightning", "devnet"]
    command += ["--devnet-dir", str(devnet_dir), "--data-dir", str(tmp_path / "d")]
    env = {**os.environ, **NARROW}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if "demo failed" in line]
    assert str(devnet_dir) in line
    assert "taskhold devnet up" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--lightning", "nonsense"], "Invalid value for --lightning: use sim or devnet"),
        (["devnet", "mine", "1", "--data-dir", "{long}"], "no devnet running in {long}"),
    ],
)
def test_errors_of_every_cli_stay_on_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    long = str(_long_dir(tmp_path))
    args = [arg.replace("{long}", long) for arg in args]
    result = CliRunner().invoke(cli, args, env=NARROW)
    assert result.exit_code != 0
    assert any(message.replace("{long}", long) in line for line in result.output.splitlines()), (
        result.output
    )


def test_markup_in_an_error_is_printed_as_is(tmp_path: Path) -> None:
    devnet_dir = tmp_path / "[red]x[/red]"
    result = CliRunner().invoke(
        cli, ["demo", "--lightning", "devnet", "--devnet-dir", str(devnet_dir)], env=NARROW
    )
    assert result.exit_code == 1
    assert str(devnet_dir) in result.output
