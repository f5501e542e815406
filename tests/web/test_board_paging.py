"""The board lists open tasks a page at a time, newest first, and fetches older ones with the
API's cursor (``next_before`` and ``next_before_id``) until there are none (Chromium against a
real ``taskhold serve``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import run_in_browser
from support.crash_harness import Serve
from support.task_cli import key_file, task_cli


def test_older_tasks_come_a_page_at_a_time(
    server: Serve, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    employer = key_file(tmp_path / "employer.key")
    common = ["--server", server.url, "--key-file", str(employer), "--json"]
    funded = []
    for n in range(3):  # often in one second: the cursor's task id keeps the order total
        created = task_cli("create", f"Task {n}", "--amount-sat", "1000", *common)
        assert created.code == 0, created.stderr
        task = created.json()
        funded.append((-task["created_at"], task["task_id"]))
        assert task_cli("fund", task["task_id"], "--wallet", "sim", *common).code == 0
    # a task still in DRAFT is not open to workers, so it is not listed
    assert task_cli("create", "Not funded", "--amount-sat", "1000", *common).code == 0

    report = run_in_browser("board-paging.mjs", server.url, request.node.name)
    newest_first = [task_id for _, task_id in sorted(funded)]
    assert report["first_page"] == newest_first[:2]
    assert report["more_shown"]
    assert report["both_pages"] == newest_first
    assert not report["more_after"]
