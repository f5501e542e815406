"""The explorer's checks (``web/src/audit``, run in Node) against the Python auditor on the same
real logs: clean, and withheld, forged, equivocated or re-signed the ways ``tests/audit`` builds
them. Both must report the same findings (kind, place, ids and wording), entry for entry: the
browser's tick or cross is then exactly ``taskhold audit``'s verdict."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.audit_logs import (
    Draft,
    RealLog,
    build_real_log,
    canonical_json,
    forged,
    forged_payment,
    paid_with,
    read_real_log,
    tag,
)
from support.browser import SCRIPTS, WEB, node_or_skip
from support.deposit_flows import deposits_log
from support.milestone_flows import paid_sequential_series
from support.split_flows import paid_split
from support.stacks import Stack
from support.task_flows import funded

from taskhold.audit import audit_log
from taskhold.keys.signer import load_or_create_key_file
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


def _deletion_asked(log: RealLog) -> dict[str, Any]:
    tags = [["e", log.entries[5]["id"]], ["k", "3910"]]
    keys = load_or_create_key_file(log.stack.settings.data_dir / "keys" / "operator.key")
    assert keys.pubkey_hex == log.operator  # the signer service signs no deletion request
    return {"events": log.entries, "deletions": [keys.sign_event(5, "", tags, 1)]}


def _rotated(log: RealLog, *, old_key_signs_after: bool) -> dict[str, Any]:
    """The log handed to a new key by a ``KeyRotated`` entry, then an entry the new key signs
    (or, the fault, one the old key signs after handing the log on)."""
    keys = load_or_create_key_file(log.stack.settings.data_dir / "keys" / "operator.key")
    new = NostrKeys.generate()
    gseq, last = len(log.entries), log.entries[-1]
    body = {"at": last["created_at"], "new_key": new.pubkey_hex, "old_key": keys.pubkey_hex,
            "type": "KeyRotated"}  # fmt: skip
    tags = [["gseq", str(gseq)], ["o", str(gseq)], ["gprev", last["id"]], ["op", "KeyRotated"],
            ["new_key", new.pubkey_hex], ["old_key", keys.pubkey_hex]]  # fmt: skip
    content = canonical_json({"event": body, "request": None, "v": 1})
    rotation = keys.sign_event(3910, content, tags, last["created_at"])
    after = keys if old_key_signs_after else new
    body = {**body, "new_key": keys.pubkey_hex, "old_key": new.pubkey_hex}
    tags = [["gseq", str(gseq + 1)], ["o", str(gseq + 1)], ["gprev", rotation["id"]],
            ["op", "KeyRotated"], ["new_key", keys.pubkey_hex],
            ["old_key", after.pubkey_hex]]  # fmt: skip
    content = canonical_json({"event": body, "request": None, "v": 1})
    back = after.sign_event(3910, content, tags, last["created_at"])
    return {"events": [*log.entries, rotation, back]}


def _checkpoint_elsewhere(log: RealLog) -> dict[str, Any]:
    gseq = len(log.entries) - 1
    tags = [["d", "taskhold-log-head"], ["gseq", str(gseq)], ["head", log.entries[0]["id"]],
            ["count", str(gseq + 1)]]  # fmt: skip
    checkpoint = log.stack.services.signer.sign_event(30078, "", tags, 1)
    return {"events": log.entries, "checkpoints": [checkpoint]}


def _e_tag_emptied(draft: Draft) -> None:
    e_tag = next(t for t in draft.tags if t[0] == "e")
    del e_tag[1:]


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
    "e-tag-without-a-value": _resign("SubmissionApproved", _e_tag_emptied),
    "not-canonical": _resign("FundingAccepted", lambda d: setattr(d, "content", d.content + " ")),
    "withheld-tail": _withheld_tail,
    "deletion-asked": _deletion_asked,
    "checkpoint-names-another-head": _checkpoint_elsewhere,
    "clean-rotated-and-back": lambda log: _rotated(log, old_key_signs_after=False),
    "old-key-signs-after-rotation": lambda log: _rotated(log, old_key_signs_after=True),
}


@pytest.fixture
def database_kind() -> str:
    """The logs are built on SQLite only: what is compared is the signed events, which the
    writer's database does not change (the auditor's own tests run on both)."""
    return "sqlite"


@pytest.fixture
async def real_log(stack: Stack) -> RealLog:
    node_or_skip()
    return await build_real_log(stack)


async def test_the_explorer_and_the_auditor_report_the_same_findings(real_log: RealLog) -> None:
    cases = {name: make(real_log) for name, make in CASES.items()}
    for name, case in cases.items():  # each tampered case is a fault the auditor finds
        found = audit_log(
            case["events"], real_log.operator,
            checkpoints=case.get("checkpoints", ()), deletions=case.get("deletions", ()),
        )  # fmt: skip
        assert name.startswith("clean") == found.clean, name
    assert_same_findings(real_log.operator, cases)


async def test_on_a_clean_log_every_preimage_and_payout_proof_holds(real_log: RealLog) -> None:
    (js,) = js_audits([{"events": real_log.entries, "operator": real_log.operator}])
    settled = {e["id"] for e in real_log.entries if tag(e, "op") == "ReleaseCompleted"}
    assert settled and set(js["preimages_ok"]) == settled
    assert set(js["payouts_proven"]) == settled
    assert js["summary"]["payouts_proven"] == js["summary"]["payouts"] == len(settled)


async def _more_paths(stack: Stack) -> RealLog:
    """A split paid to both sides, a private task paid, a sequential series of milestones paid
    through: the paths the first log does not take."""
    await paid_split(stack)
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer, description="private details", private=True)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task["task_id"], {"url": "https://example.org/p"}, invoice)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    await paid_sequential_series(stack, employer, worker)
    return await read_real_log(stack)


_HASH_TAGS = ("preimage", "payout_preimage", "share_preimage", "payment_hash", "payout_hash",
              "share_hash", "deposit_hash", "depositor", "prev")  # fmt: skip
_CONTENT_FIELDS = ("milestone_index", "funding_mode", "details_hash", "proof_hash",
                   "amount_msat", "worker_pubkey", "payout_payment_hash_hex")  # fmt: skip


def _other_hash(draft: Draft) -> None:
    """The first hash-like tag the entry has, replaced by another 32 bytes."""
    name = next((t[0] for t in draft.tags if t[0] in _HASH_TAGS), None)
    if name is None:
        draft.set_tag("state", "cd" * 32)
    else:
        draft.set_tag(name, hashlib.sha256(name.encode()).hexdigest())


def _other_content(draft: Draft) -> None:
    """The first field of the content's event the checks read, changed."""

    def edit(body: dict[str, Any]) -> None:
        event = body["event"]
        name = next((n for n in _CONTENT_FIELDS if n in event), None)
        if name is None:
            body["v"] = 2
        elif isinstance(event[name], int):
            event[name] += 1
        else:
            event[name] = "sequential" if name == "funding_mode" else "ef" * 32

    draft.edit_content(edit)


def _flipped_sig(event: dict[str, Any]) -> dict[str, Any]:
    sig = event["sig"]
    return {**event, "sig": sig[:-1] + ("0" if sig[-1] != "0" else "1")}


def assert_tampered_alike(log: RealLog) -> None:
    """Each entry of ``log`` in turn withheld or its signature broken, and the first entry of
    each op re-signed by the operator with an earlier time, another hash or another content
    field: the explorer and the auditor report the same findings for each of these logs."""
    node_or_skip()
    assert audit_log(log.entries, log.operator).clean
    cases: dict[str, dict[str, Any]] = {"clean": {"events": log.entries}}
    seen: set[str | None] = set()
    for gseq, entry in enumerate(log.entries):
        op = tag(entry, "op")
        cases[f"{gseq} {op} withheld"] = {"events": log.entries[:gseq] + log.entries[gseq + 1 :]}
        flipped = [_flipped_sig(e) if e is entry else e for e in log.entries]
        cases[f"{gseq} {op} bad signature"] = {"events": flipped}
        if op in seen:
            continue  # re-signing is slow: each op once is every kind of entry
        seen.add(op)
        for change in (_backdated, _other_hash, _other_content):
            cases[f"{gseq} {op} {change.__name__}"] = {"events": log.resigned(gseq, change)}
    assert_same_findings(log.operator, cases)


async def test_a_split_a_private_task_and_milestones_tampered_are_reported_alike(
    stack: Stack,
) -> None:
    log = await _more_paths(stack)
    ops = {tag(e, "op") for e in log.entries}
    assert {"SplitSharePaid", "SplitCompleted", "ReleaseCompleted"} <= ops, ops
    assert_tampered_alike(log)


async def test_deposits_tampered_are_reported_alike(tmp_path: Path, database_url: str) -> None:
    async with deposits_log(tmp_path, database_url) as log:
        assert {"DepositPaidOut", "DepositForfeited", "DepositReturned"} <= {
            tag(e, "op") for e in log.entries
        }
        assert_tampered_alike(log)
