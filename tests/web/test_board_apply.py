"""A task in claim mode ``apply`` through the board, in Chromium against a real ``taskhold
serve``: a worker applies with a note, the employer assigns them from the page, and the worker
gives the task back; each step signed by the NIP-07 test signer and checked through the API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.browser import run_in_browser
from support.crash_harness import Serve
from support.task_cli import task_cli

from taskhold.nostr import NostrKeys


def test_apply_assign_and_give_back_through_the_board(
    server: Serve, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    employer, worker = NostrKeys.generate(), NostrKeys.generate()
    employer_file = tmp_path / "employer.key"
    employer_file.write_text(employer.secret_hex_unsafe())
    employer_file.chmod(0o600)
    common = ["--server", server.url, "--key-file", str(employer_file), "--json"]
    created = task_cli("create", "Port the docs", "--amount-sat", "3000", "--claim-mode", "apply",
                       *common)  # fmt: skip
    assert created.code == 0, created.stderr
    task_id = created.json()["task_id"]
    assert task_cli("fund", task_id, "--wallet", "sim", *common).code == 0

    report = run_in_browser(
        "board-apply.mjs",
        server.url,
        request.node.name,
        task_id=task_id,
        employer_secret=employer.secret_hex_unsafe(),
        worker_secret=worker.secret_hex_unsafe(),
    )
    assert report["worker_actions"] == ["apply"]  # no claim on an apply task
    assert report["applicant_choices"] == [worker.pubkey_hex]
    assert report["worker_actions_claimed"] == ["proof", "unclaim"]
    assert report["worker_actions_after"] == []  # a key that gave a task back may not retake it

    task = httpx.get(f"{server.url}/v1/tasks/{task_id}").json()
    assert task["state"] == "FUNDED"
    assert task["applicants"] == [worker.pubkey_hex]
    assert task["barred_workers"] == [worker.pubkey_hex]
    log = httpx.get(f"{server.url}/v1/tasks/{task_id}/transitions").json()["transitions"]
    assert [row["event_type"] for row in log][-3:] == [
        "ApplicationFiled", "WorkerAssigned", "ClaimReleased",
    ]  # fmt: skip
