"""The board in a real browser (Debian's Chromium) against a real ``taskhold serve``: the page's
bundle loads and lists a funded task. The harness every browser test uses is proved here."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import run_in_browser
from support.crash_harness import Serve
from support.task_cli import key_file, task_cli


def test_the_board_lists_a_funded_task(
    server: Serve, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    employer = key_file(tmp_path / "employer.key")
    common = ["--server", server.url, "--key-file", str(employer), "--json"]
    created = task_cli("create", "Translate the README", "--amount-sat", "2100", *common)
    assert created.code == 0, created.stderr
    task_id = created.json()["task_id"]
    funded = task_cli("fund", task_id, "--wallet", "sim", *common)
    assert funded.code == 0, funded.stderr
    report = run_in_browser("smoke.mjs", server.url, request.node.name, task_id=task_id)
    assert report["listed_text"] == "Translate the README — 2,100 sat"
    assert report["not_built_notice"] == 0
    assert Path(report["screenshots"][0]).stat().st_size > 0
