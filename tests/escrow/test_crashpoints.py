"""The crash-point catalogue is the code's: every named point is called exactly once, and
``TASKHOLD_CRASH_AT`` kills the process (SIGKILL) at the nth time its point is reached."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import taskhold
from taskhold.escrow.crashpoints import CRASH_POINTS, parse_crash_at
from taskhold.services import build_services
from taskhold.settings import Settings

PACKAGE = Path(taskhold.__file__).parent


def _fault_hook_calls() -> list[tuple[str, ast.expr]]:
    """Every ``….fault_hook(arg)`` call in the package, with where it is."""
    calls: list[tuple[str, ast.expr]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "fault_hook"
            ):
                assert len(node.args) == 1, f"{path}:{node.lineno}"
                calls.append((f"{path.relative_to(PACKAGE)}:{node.lineno}", node.args[0]))
    return calls


def test_every_crash_point_is_called_exactly_once_by_its_literal_name() -> None:
    calls = _fault_hook_calls()
    names: list[str] = []
    for where, arg in calls:
        assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
            f"{where}: the fault hook is called with a literal point name, so this test sees it"
        )
        names.append(arg.value)
    assert Counter(names) == Counter(list(CRASH_POINTS)), "catalogue and call sites differ"


def test_the_catalogue_covers_every_money_path() -> None:
    paths = {"hold_invoice", "htlc_accepted", "payout_row", "payout", "settle", "cancel"}
    for path in paths:
        assert f"after_{path}" in CRASH_POINTS
        assert f"after_deposit_{path.removeprefix('hold_')}" in CRASH_POINTS
    assert {"after_payout_failure", "after_deposit_payout_failure"} <= CRASH_POINTS.keys()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("after_payout", ("after_payout", 1)), ("after_cancel:3", ("after_cancel", 3))],
)
def test_crash_at_names_a_point_and_a_count(spec: str, expected: tuple[str, int]) -> None:
    assert parse_crash_at(spec) == expected


@pytest.mark.parametrize("spec", ["after_payuot", "after_payout:0", "after_payout:x", ""])
def test_a_crash_point_outside_the_catalogue_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_crash_at(spec)


async def test_serve_refuses_a_misspelt_crash_point_before_opening_anything(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data", crash_at="after_payuot")
    with pytest.raises(SystemExit, match="unknown crash point"):
        await build_services(settings)
    assert not (tmp_path / "data").exists()


def test_the_crash_hook_kills_the_process_the_nth_time_its_point_is_reached() -> None:
    script = (
        "import asyncio\n"
        "from taskhold.escrow.crashpoints import crash_hook\n"
        "hook = crash_hook('after_settle:2')\n"
        "async def main():\n"
        "    for point in ['after_payout', 'after_settle', 'after_payout', 'after_settle']:\n"
        "        await hook(point)\n"
        "        print(point, flush=True)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.split() == ["after_payout", "after_settle", "after_payout"]
