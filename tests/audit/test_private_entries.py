"""The auditor and the rebuild on a log with a private task: it reads clean and rebuilds to the
same task (sealed copies included); an operator who swaps the commitment, or publishes the
details in the clear, is caught; a disclosure checks against the commitment, a tampered one
does not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.audit_logs import Draft, RealLog
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_flows import funded, read_log, tag

from taskhold.audit import audit_log
from taskhold.audit.commitments import disclosure_matches
from taskhold.audit.findings import FindingKind
from taskhold.client import TaskholdClient
from taskhold.nostr.confidential import open_sealed
from taskhold.rebuild.replay import rebuild_from_entries
from taskhold.store.codec import task_to_data

SECRET = "the private details of the task"


async def _private_run(stack: Stack) -> tuple[str, TaskholdClient]:
    """A private task claimed, proven and approved to PAID; returns its id and its worker."""
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer, description=SECRET, private=True)
    task_id = task["task_id"]
    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
    await employer.approve(task_id)
    await stack.settle_engine()
    assert (await employer.get_task(task_id))["state"] == "PAID"
    return task_id, worker


async def test_a_private_task_audits_clean_and_rebuilds_with_its_sealed_copies(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    settings = stack_settings(tmp_path, database_url)
    original = await open_stack(settings)
    try:
        task_id, _ = await _private_run(original)
        log = await read_log(original)
        operator = original.services.signer.get_public_key()
        async with original.services.store.transaction() as tx:
            task = await tx.load_task(task_id)
            assert task is not None
            expected = task_to_data(task)
    finally:
        await close_stack(original)
    assert expected["visibility"] == "private" and len(expected["details_sealed"]) == 3
    assert SECRET not in json.dumps(log)
    result = audit_log(log, operator)
    assert result.clean, [finding.to_json() for finding in result.findings]

    async with new_database(database_kind, tmp_path / "rebuilt") as url:
        rebuilt = await open_stack(
            settings.model_copy(update={"database_url": url}), world=original.world
        )
        try:
            await rebuild_from_entries(rebuilt.services.store, log, operator_pubkey=operator)
            async with rebuilt.services.store.transaction() as tx:
                task = await tx.load_task(task_id)
                assert task is not None and task_to_data(task) == expected
        finally:
            await close_stack(rebuilt)


async def test_a_swapped_commitment_or_a_clear_description_is_caught(
    tmp_path: Path, database_url: str
) -> None:
    stack = await open_stack(stack_settings(tmp_path, database_url))
    try:
        await _private_run(stack)
        real = RealLog(stack, stack.services.signer.get_public_key(), await read_log(stack))
    finally:
        await close_stack(stack)
    created = real.entry("TaskCreated")
    assert tag(created, "gseq") == "0"

    def changed(field: str, value: object) -> list[str]:
        def change(draft: Draft) -> None:
            draft.edit_content(lambda body: body["event"].update({field: value}))

        result = audit_log(real.resigned(0, change), real.operator)
        return [f.detail for f in result.findings if f.kind is FindingKind.MALFORMED]

    assert any("details_hash differs" in d for d in changed("details_hash", "ab" * 32))
    assert any("description must be empty" in d for d in changed("description", SECRET))
    assert any("visibility" in d for d in changed("visibility", "secret"))

    proof_gseq = int(str(tag(real.entry("ProofSubmitted"), "gseq")))

    def clear_proof(draft: Draft) -> None:
        draft.edit_content(
            lambda body: body["event"].update(proof={"url": "https://example.org/haiku"})
        )

    result = audit_log(real.resigned(proof_gseq, clear_proof), real.operator)
    assert any("no clear proof" in f.detail for f in result.findings), [
        f.to_json() for f in result.findings
    ]

    # The employer's copy of the proof is the operator's, sealed again from what it checked; a
    # copy from anyone else, or an operator's copy that is not the one the worker signed, is not.
    proof_event = json.loads(real.entry("ProofSubmitted")["content"])["event"]
    stranger = "ab" * 32

    def copies_changed(edit: Callable[[dict[str, Any]], None]) -> list[str]:
        def change(draft: Draft) -> None:
            draft.edit_content(lambda body: edit(body["event"]["proof_sealed"]))

        result = audit_log(real.resigned(proof_gseq, change), real.operator)
        return [f.detail for f in result.findings if f.kind is FindingKind.MALFORMED]

    def other_sender(copies: dict[str, Any]) -> None:
        for reader, copy in copies.items():
            if copy["sender"] == real.operator and reader != real.operator:
                copy["sender"] = stranger

    def operator_copy_swapped(copies: dict[str, Any]) -> None:
        copies[real.operator]["ciphertext"] = copies[real.operator]["ciphertext"][::-1]

    assert proof_event["proof_sealed"], "the proof went sealed"
    for edit in (other_sender, operator_copy_swapped):
        assert any("proof_sealed differs" in d for d in copies_changed(edit)), edit.__name__
    assert audit_log(real.entries, real.operator).clean


async def test_a_disclosure_checks_against_the_logged_commitment(stack: Stack) -> None:
    """The arbiter's check: the employer discloses the payload; it hashes to the commitment in
    the log, and the same payload with one word changed does not."""
    task_id, worker = await _private_run(stack)
    log = await read_log(stack)
    created = json.loads(log[0]["content"])["event"]
    copy = created["details_sealed"]
    employer_copy = next(c for r, c in copy.items() if r == c["sender"])
    employer = created["actor"]
    assert employer_copy["sender"] == employer
    task = await worker.get_task(task_id)
    mine = task["details_sealed"][worker.pubkey_hex]
    disclosed = open_sealed(worker._keys, mine["sender"], mine["ciphertext"])

    assert disclosure_matches(disclosed, created["details_hash"])
    tampered = disclosed.replace("private", "public")
    assert tampered != disclosed
    assert not disclosure_matches(tampered, created["details_hash"])
