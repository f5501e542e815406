"""The board against what strangers and broken tools do: a task written as markup is shown as
text and runs nothing, a NIP-07 signer that signs with another key than it named gets nothing
sent, and a browser without a signer is shown the CLI's commands and no form. Each runs in
Debian's Chromium against a real ``taskhold serve`` on the simulator."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.browser import run_in_browser
from support.crash_harness import Serve
from support.task_cli import key_file, task_cli

from taskhold.nostr import NostrKeys

HOSTILE_TITLE = '<img src=x onerror="window.__taskholdPwned=1;alert(1)">'
HOSTILE_DESCRIPTION = "<script>window.__taskholdPwned=2;alert(2)</script><b>bold</b>"


@pytest.fixture(scope="module")
def funded_task(server: Serve, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A funded task whose title and description are markup, posted with the CLI."""
    employer = key_file(tmp_path_factory.mktemp("keys") / "employer.key")
    common = ["--server", server.url, "--key-file", str(employer), "--json"]
    created = task_cli(
        "create", HOSTILE_TITLE, "--amount-sat", "1500", "--description", HOSTILE_DESCRIPTION,
        *common,
    )  # fmt: skip
    assert created.code == 0, created.stderr
    task_id = str(created.json()["task_id"])
    funded = task_cli("fund", task_id, "--wallet", "sim", *common)
    assert funded.code == 0, funded.stderr
    return task_id


def test_markup_in_a_task_is_shown_as_text_and_runs_nothing(
    server: Serve, funded_task: str, request: pytest.FixtureRequest
) -> None:
    report = run_in_browser(
        "board-hostile-text.mjs", server.url, request.node.name, task_id=funded_task
    )
    assert report["listed_text"] == f"{HOSTILE_TITLE} — 1,500 sat"
    assert report["title_text"] == HOSTILE_TITLE
    assert report["description_text"] == HOSTILE_DESCRIPTION
    assert report["board_injected"] == report["task_injected"] == 0
    assert report["pwned"] == 0
    assert report["dialogs"] == []
    assert report["document_title"] == f"{HOSTILE_TITLE} — taskhold"


@pytest.mark.parametrize(
    ("mode", "said"),
    [("other_key", "another key"), ("tampered", "changed the request")],
)
def test_a_signer_that_signs_something_else_gets_nothing_sent(
    server: Serve, funded_task: str, request: pytest.FixtureRequest, mode: str, said: str
) -> None:
    """A signer that signs with another key than it named, or signs another request than the
    page asked for, gets nothing sent: the form says why and is ready again."""
    signing, claimed = NostrKeys.generate(), NostrKeys.generate()
    report = run_in_browser(
        "board-hostile-signer.mjs",
        server.url,
        request.node.name,
        mode=mode,
        task_id=funded_task,
        signing_secret=signing.secret_hex_unsafe(),
        claimed_pubkey=claimed.pubkey_hex,
    )
    assert "not a party" in report["signed_in"]
    assert report["signed"] == 1  # the signer was asked, and answered
    assert report["refusal_text"].startswith("Not sent")
    assert said in report["refusal_text"]
    assert report["button_enabled"]  # no hang: the form is ready for another try
    assert report["posts"] == []
    task = httpx.get(f"{server.url}/v1/tasks/{funded_task}").json()
    assert task["state"] == "FUNDED" and task["worker_pubkey"] is None


def test_without_a_signer_the_pages_show_the_cli_and_no_form(
    server: Serve, funded_task: str, request: pytest.FixtureRequest
) -> None:
    report = run_in_browser(
        "board-no-signer.mjs", server.url, request.node.name, task_id=funded_task
    )
    assert report["create_command"].startswith("taskhold task create ")
    assert f"--server {server.url} --key-file YOUR.key" in report["create_command"]
    assert report["board_forms"] == report["task_forms"] == 0
    commands = {step["op"]: step["command"] for step in report["steps"]}
    assert commands == {
        "claim": f"taskhold task claim {funded_task} --server {server.url} --key-file YOUR.key",
        "cancel": f"taskhold task cancel {funded_task} --reason 'why, in a sentence'"
        f" --server {server.url} --key-file YOUR.key",
    }
    assert all(Path(shot).stat().st_size > 0 for shot in report["screenshots"])
