"""A whole task through the web board, in Debian's Chromium against a real ``taskhold serve`` on
the simulator, with a NIP-07 test signer whose keys stay in the test's Node process: the
employer posts and funds the task, a worker claims it and sends the proof, the employer
approves, and the page shows PAID with every log entry checked. Screenshots of each step are
kept under test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.browser import run_in_browser
from support.crash_harness import Serve


def test_a_whole_task_through_the_board(server: Serve, request: pytest.FixtureRequest) -> None:
    report = run_in_browser("board-lifecycle.mjs", server.url, request.node.name)
    task_id = report["task_id"]
    task = httpx.get(f"{server.url}/v1/tasks/{task_id}").json()

    # the task the page made and acted on is the one taskhold paid out
    assert task["state"] == "PAID"
    assert task["title"] == "Proofread the board's help text"
    assert task["amount_msat"] == 2_100_000
    assert task["acceptance"]["url_fields"] == ["url"]
    assert task["employer_pubkey"] == report["employer_pubkey"]
    assert task["worker_pubkey"] == report["worker_pubkey"]
    assert task["proof"] == {"url": "https://example.org/pr/7"}
    grown = report["worker_balance_after"] - report["worker_balance_before"]
    assert grown == task["payout_msat"] > 0

    # what the page showed on the way
    assert report["funding_invoice"] == task["funding"]["payment_request"]
    assert report["funding_link"] == "lightning:" + task["funding"]["payment_request"]
    assert report["employer_actions"] == ["fund", "cancel"]
    assert report["worker_actions_funded"] == ["claim"]
    assert report["employer_actions_submitted"] == [
        "approve",
        "reject",
        "dispute",
    ]  # it has arbiters
    assert report["refusal_text"].startswith("Refused: ")
    assert "payout_invoice" in report["refusal_text"]  # the server's detail, shown whole
    assert report["expected_console"] == 1
    assert report["proof_shown"] == ["https://example.org/pr/7"]

    # the timeline is the public log's, each entry's signature checked in the browser
    log = httpx.get(f"{server.url}/v1/tasks/{task_id}/transitions").json()["transitions"]
    assert len(report["timeline"]) == len(log) >= 5
    assert [entry["verified"] for entry in report["timeline"]] == ["true"] * len(log)
    assert "PAID" in report["timeline"][-1]["text"]
    assert report["audit_link"] == 1
    assert report["reputation_tasks"] >= 1
    assert len(report["your_tasks"]) == 1 and report["your_tasks"][0].endswith(" · PAID")

    # every write was signed by the test signer, and no secret left it
    assert report["signed"] == ["create", "fund", "claim", "proof", "proof", "approve"]
    assert report["posts"].count("/v1/tasks") == 1
    assert report["secret_seen"] == 0 and report["requests"] > 10
    assert report["key_inputs"] == 0
    assert len(report["screenshots"]) == 9
    assert all(Path(shot).stat().st_size > 0 for shot in report["screenshots"])
