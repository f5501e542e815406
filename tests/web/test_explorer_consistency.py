"""The explorer's checks (``web/src/audit``, run in Node) against the Python auditor on the same
real logs: clean, and withheld, forged, equivocated or re-signed the ways ``tests/audit`` builds
them. Both must report the same findings (kind, place, ids and wording), entry for entry: the
browser's tick or cross is then exactly ``taskhold audit``'s verdict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from support.audit_logs import (
    Draft,
    RealLog,
    build_real_log,
    forged,
    forged_payment,
    paid_with,
    tag,
)
from support.browser import SCRIPTS, WEB
from support.stacks import Stack

from taskhold.audit import audit_log
from taskhold.nostr import NostrKeys

Case = Callable[[RealLog], dict[str, Any]]


def js_audits(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``web/browser/explorer_audit.mjs`` on each log ({events, operator, checkpoints?,
    deletions?}): the explorer's verdicts, as JSON."""
    ran = subprocess.run(
        ["node", str(SCRIPTS / "explorer_audit.mjs")],
        input=json.dumps(logs),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=WEB,
    )
    assert ran.returncode == 0, ran.stderr
    results: list[dict[str, Any]] = json.loads(ran.stdout.strip().splitlines()[-1])
    return results


def assert_same_findings(operator: str, cases: dict[str, dict[str, Any]]) -> None:
    """The auditor and the explorer agree on every case ({events, checkpoints?, deletions?})."""
    logs = [{**case, "operator": operator} for case in cases.values()]
    for name, log, js in zip(cases, logs, js_audits(logs), strict=True):
        python = audit_log(
            log["events"], operator,
            checkpoints=log.get("checkpoints", ()), deletions=log.get("deletions", ()),
        )  # fmt: skip
        expected = comparable([f.to_json() for f in python.findings])
        assert comparable(js["findings"]) == expected, name
        summary = python.summary
        figures = (summary.entries, summary.payouts, summary.payouts_proven)
        js_figures = tuple(js["summary"][n] for n in ("entries", "payouts", "payouts_proven"))
        assert js_figures == figures, name


def comparable(findings: list[dict[str, Any]]) -> list[str]:
    return sorted(
        json.dumps([f["kind"], f["location"], f["detail"], f["event_ids"]], sort_keys=True)
        for f in findings
    )


def _resign(op: str, change: Callable[[Draft], None]) -> Case:
    def case(log: RealLog) -> dict[str, Any]:
        return {"events": forged(log, (op, 0, change))}

    return case


def _dropped(log: RealLog) -> dict[str, Any]:
    proof = log.entry("ProofSubmitted")
    return {"events": [e for e in log.entries if e is not proof]}


def _equivocated(log: RealLog) -> dict[str, Any]:
    original = log.entry("FundingAccepted")
    twin = log.sign(
        original["content"],
        [["state", "ab" * 32] if t[0] == "state" else t for t in original["tags"]],
        original["created_at"],
    )
    return {"events": [*log.entries, twin]}


def _bad_signature(log: RealLog) -> dict[str, Any]:
    original = log.entries[3]
    sig = original["sig"]
    flipped = {**original, "sig": sig[:-1] + ("0" if sig[-1] != "0" else "1")}
    return {"events": [flipped if e is original else e for e in log.entries]}


def _bad_id_and_stranger(log: RealLog) -> dict[str, Any]:
    claimed = log.entry("TaskClaimed")
    tampered = {**claimed, "content": claimed["content"].replace("TaskClaimed", "TaskClaimeD")}
    stranger = NostrKeys.generate().sign_event(
        3910, claimed["content"], claimed["tags"], claimed["created_at"]
    )
    return {"events": [*log.entries, tampered, stranger, {"id": "x"}]}


def _wrong_preimage(draft: Draft) -> None:
    wrong = os.urandom(32).hex()
    draft.set_tag("preimage", wrong)
    draft.edit_content(lambda body: body["event"].update(preimage_hex=wrong))


def _withheld_tail(log: RealLog) -> dict[str, Any]:
    head = log.entries[-1]
    gseq = len(log.entries) - 1
    tags = [["d", "taskhold-log-head"], ["gseq", str(gseq)], ["head", head["id"]],
            ["count", str(gseq + 1)]]  # fmt: skip
    checkpoint = log.stack.services.signer.sign_event(30078, "", tags, head["created_at"])
    return {"events": log.entries[:-3], "checkpoints": [checkpoint]}


def _backdated(draft: Draft) -> None:
    draft.created_at -= 3600


CASES: dict[str, Case] = {
    "clean": lambda log: {"events": log.entries},
    "clean-twice-shuffled": lambda log: {"events": list(reversed(log.entries * 2))},
    "deleted-entry": _dropped,
    "equivocation": _equivocated,
    "bad-signature": _bad_signature,
    "bad-id-stranger-and-junk": _bad_id_and_stranger,
    "broken-prev": _resign("TaskClaimed", lambda d: d.set_tag("prev", "00" * 32)),
    "broken-gprev": _resign("TaskClaimed", lambda d: d.set_tag("gprev", "00" * 32)),
    "wrong-preimage": _resign("ReleaseCompleted", _wrong_preimage),
    "forged-payout": _resign("ReleaseCompleted", paid_with(*forged_payment())),
    "time-backwards": _resign("TaskClaimed", _backdated),
    "not-canonical": _resign("FundingAccepted", lambda d: setattr(d, "content", d.content + " ")),
    "withheld-tail": _withheld_tail,
}


@pytest.fixture
async def real_log(stack: Stack) -> RealLog:
    if shutil.which("node") is None or not (WEB / "node_modules" / "nostr-tools").is_dir():
        pytest.skip("needs node and web/node_modules (scripts/build-web)")
    return await build_real_log(stack)


async def test_the_explorer_and_the_auditor_report_the_same_findings(real_log: RealLog) -> None:
    cases = {name: make(real_log) for name, make in CASES.items()}
    for name, case in cases.items():  # each tampered case is a fault the auditor finds
        found = audit_log(
            case["events"], real_log.operator, checkpoints=case.get("checkpoints", ())
        )
        assert name.startswith("clean") == found.clean, name
    assert_same_findings(real_log.operator, cases)


async def test_on_a_clean_log_every_preimage_and_payout_proof_holds(real_log: RealLog) -> None:
    (js,) = js_audits([{"events": real_log.entries, "operator": real_log.operator}])
    settled = {e["id"] for e in real_log.entries if tag(e, "op") == "ReleaseCompleted"}
    assert settled and set(js["preimages_ok"]) == settled
    assert set(js["payouts_proven"]) == settled
    assert js["summary"]["payouts_proven"] == js["summary"]["payouts"] == len(settled)
