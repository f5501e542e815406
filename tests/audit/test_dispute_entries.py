"""The auditor on a real log where a proof was refused and a dispute ran out unresolved: the
``ProofRefused`` and ``DisputeWindowElapsed`` entries read clean, and the worker was paid."""

from __future__ import annotations

from pathlib import Path

from support.deposit_flows import share_clock
from support.stacks import close_stack, open_stack, stack_settings
from support.task_flows import funded, read_log, tag

from taskhold.audit import audit_log
from taskhold.client import TaskholdAPIError


async def test_a_dispute_that_ran_out_releases_and_audits_clean(
    tmp_path: Path, database_url: str
) -> None:
    stack = await open_stack(stack_settings(tmp_path, database_url))  # no arbiter configured
    try:
        now = [1_900_000_000.0]
        employer, worker = stack.client(), stack.client()
        share_clock(stack, now, employer, worker)
        task = await funded(stack, employer, deadline_at=int(now[0]) + 3600)
        task_id = task["task_id"]
        await worker.claim(task_id)
        invoice = await stack.world.worker.create_invoice(
            task["payout_msat"], expiry_seconds=86_400
        )
        try:
            await worker.submit_proof(task_id, {"url": "not a url"}, invoice)
            raise AssertionError("a bad proof was accepted")
        except TaskholdAPIError as exc:
            assert exc.code == "proof_rejected"
        await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
        await employer.reject(task_id, "I changed my mind")
        try:
            await employer.open_dispute(task_id, "no arbiter to ask")
            raise AssertionError("an employer disputed with nobody to decide")
        except TaskholdAPIError as exc:
            assert (exc.status, exc.code) == (409, "no_arbiter")
        disputed = await worker.open_dispute(task_id, "the proof meets the spec")
        window = stack.settings.default_dispute_window_s
        assert disputed["dispute"]["window_ends_at"] == int(now[0]) + window
        assert disputed["proofs_refused"] == 1
        now[0] += window
        await stack.settle_engine()

        assert (await worker.get_task(task_id))["state"] == "PAID"
        entries = await read_log(stack)
        ops = [tag(entry, "op") for entry in entries]
        assert {"ProofRefused", "DisputeWindowElapsed"} <= set(ops)
        result = audit_log(entries, stack.services.signer.get_public_key())
        assert result.clean, [f.to_json() for f in result.findings]
    finally:
        await close_stack(stack)
