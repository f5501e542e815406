"""The auditor and the rebuild on a real log with every claim entry (``ApplicationFiled``,
``WorkerAssigned``, ``ClaimReleased``, ``ClaimRevoked``): it reads clean and rebuilds to the same
tasks; an operator who embeds a revocation the employer never signed is caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support.audit_logs import Draft, RealLog
from support.deposit_flows import share_clock
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_flows import funded, read_log, tag

from taskhold.audit import audit_log
from taskhold.audit.findings import FindingKind
from taskhold.nostr import NostrKeys
from taskhold.rebuild.replay import rebuild_from_entries
from taskhold.store.codec import task_to_data

TIMEOUT = 600


async def _claim_log(stack: Stack) -> tuple[dict[str, str], NostrKeys]:
    """An apply task whose assignee unclaims and whose next assignee is revoked, then a third
    applicant paid; and an open task whose squatter is revoked. Returns the task ids and the
    revoked worker's keys."""
    now = [1_900_000_000.0]
    employer = stack.client()
    revoked_keys = NostrKeys.generate()
    quitter, revoked, paid = stack.client(), stack.client(revoked_keys), stack.client()
    share_clock(stack, now, employer, quitter, revoked, paid)
    terms: dict[str, Any] = {"claim_timeout_s": TIMEOUT, "deadline_at": int(now[0]) + 3600}
    task = await funded(stack, employer, claim_mode="apply", **terms)
    task_id = task["task_id"]
    for applicant in (quitter, revoked, paid):
        await applicant.apply(task_id, "pick me")
    await employer.assign(task_id, quitter.pubkey_hex)
    await quitter.unclaim(task_id)
    await employer.assign(task_id, revoked.pubkey_hex)
    now[0] += TIMEOUT
    await employer.revoke(task_id, "no proof")
    await employer.assign(task_id, paid.pubkey_hex)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await paid.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
    await employer.approve(task_id)
    squatted = (await funded(stack, employer, **terms))["task_id"]
    await revoked.claim(squatted)
    now[0] += TIMEOUT
    await employer.revoke(squatted)
    await stack.settle_engine()
    assert (await employer.get_task(task_id))["state"] == "PAID"
    assert (await employer.get_task(squatted))["state"] == "FUNDED"
    return {"apply": task_id, "open": squatted}, revoked_keys


async def test_claim_entries_audit_clean_and_rebuild_to_the_same_tasks(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    settings = stack_settings(tmp_path, database_url)
    original = await open_stack(settings)
    try:
        task_ids, _ = await _claim_log(original)
        log = await read_log(original)
        operator = original.services.signer.get_public_key()
        async with original.services.store.transaction() as tx:
            expected = {
                name: task_to_data(task)
                for name, task_id in task_ids.items()
                if (task := await tx.load_task(task_id)) is not None
            }
    finally:
        await close_stack(original)
    ops = [tag(entry, "op") for entry in log]
    assert ops.count("ApplicationFiled") == 3 and ops.count("WorkerAssigned") == 3
    assert ops.count("ClaimReleased") == 1 and ops.count("ClaimRevoked") == 2
    result = audit_log(log, operator)
    assert result.clean, [finding.to_json() for finding in result.findings]

    async with new_database(database_kind, tmp_path / "rebuilt") as url:
        rebuilt = await open_stack(
            settings.model_copy(update={"database_url": url}), world=original.world
        )
        try:
            report = await rebuild_from_entries(
                rebuilt.services.store, log, operator_pubkey=operator
            )
            assert report.entries == len(log)
            async with rebuilt.services.store.transaction() as tx:
                for name, task_id in task_ids.items():
                    task = await tx.load_task(task_id)
                    assert task is not None and task_to_data(task) == expected[name]
        finally:
            await close_stack(rebuilt)


async def test_a_revocation_the_employer_never_signed_is_caught(
    tmp_path: Path, database_url: str
) -> None:
    stack = await open_stack(stack_settings(tmp_path, database_url))
    try:
        task_ids, revoked_keys = await _claim_log(stack)
        real = RealLog(stack, stack.services.signer.get_public_key(), await read_log(stack))
    finally:
        await close_stack(stack)
    target = real.entry("ClaimRevoked", 1)  # the open task's: the squatter signs it instead
    assert tag(target, "task") == task_ids["open"]
    content = json.loads(target["content"])
    genuine = content["request"]
    forged = revoked_keys.sign_event(
        genuine["kind"], genuine["content"], genuine["tags"], genuine["created_at"]
    )

    def embed_forged(draft: Draft) -> None:
        content["request"] = forged
        draft.content = json.dumps(content, sort_keys=True, separators=(",", ":"))
        for t in draft.tags:
            if t[0] == "e":
                t[1], t[3] = forged["id"], forged["pubkey"]

    gseq = int(str(tag(target, "gseq")))
    result = audit_log(real.resigned(gseq, embed_forged), real.operator)
    bad = [f for f in result.findings if f.kind is FindingKind.BAD_EMBEDDED_REQUEST]
    assert bad and "must be signed by the employer" in bad[0].detail, [
        f.to_json() for f in result.findings
    ]
    assert audit_log(real.entries, real.operator).clean
