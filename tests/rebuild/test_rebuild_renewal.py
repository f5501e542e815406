"""A renewed task rebuilt from its log: the projection comes back equal, a renewal open at
the loss is still taken, a previous round not yet cancelled is cancelled, and the task is
paid from its last round."""

from __future__ import annotations

import hashlib
from pathlib import Path

from support.renewal_flows import invoice_state, long_task, opened_renewal, renewed_once
from support.stacks import close_stack, new_database, open_stack, stack_settings
from support.task_flows import projection, read_log

from taskhold.lightning.base import InvoiceState
from taskhold.nostr import NostrKeys
from taskhold.rebuild.replay import rebuild_from_entries


class SimulatedCrash(Exception):
    """Stands for the process dying at a fault point."""


async def test_a_renewed_task_rebuilds_and_goes_on_renewing(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    settings = stack_settings(tmp_path, database_url)
    original = await open_stack(settings)
    employer_keys, worker_keys = NostrKeys.generate(), NostrKeys.generate()
    employer = original.client(employer_keys)
    try:
        task = await long_task(original, employer)
        task = await renewed_once(original, employer, task)  # round 2, round 1 cancelled
        second = await opened_renewal(original, employer, task)  # round 3 open
        overlap = await long_task(original, employer)
        paid = await opened_renewal(original, employer, overlap)
        await original.world.employer.send_payment(paid["payment_request"])
        original.faults["after_round_cancel"] = SimulatedCrash()
        await original.settle_engine(1)  # overlap: renewed, its round 1 not recorded cancelled
        log = await read_log(original)
        before = await projection(original)
        operator = original.services.signer.get_public_key()
    finally:
        await close_stack(original)

    async with new_database(database_kind, tmp_path / "rebuilt") as fresh_url:
        rebuilt = await open_stack(stack_settings(tmp_path, fresh_url), world=original.world)
        try:
            await rebuild_from_entries(rebuilt.services.store, log, operator_pubkey=operator)
            assert await projection(rebuilt) == before
            client = rebuilt.client(employer_keys)
            assert (await client.renewal(task["task_id"])) == second
            await rebuilt.world.employer.send_payment(second["payment_request"])
            await rebuilt.settle_engine(2)
            task = await client.get_task(task["task_id"])
            assert task["funding"]["funding_round"] == second["funding_round"]
            assert await invoice_state(rebuilt, overlap["funding"]["payment_hash"]) is (
                InvoiceState.CANCELED
            )
            async with rebuilt.services.store.transaction() as tx:
                stored = await tx.load_task(overlap["task_id"])
            assert stored is not None and stored.retiring_payment_hash_hex is None

            worker_client = rebuilt.client(worker_keys)
            await worker_client.claim(task["task_id"])
            invoice = await rebuilt.world.worker.create_invoice(
                task["payout_msat"], expiry_seconds=86_400
            )
            await worker_client.submit_proof(
                task["task_id"], {"url": "https://example.org/x"}, invoice
            )
            await client.approve(task["task_id"])
            await rebuilt.settle_engine()
            final = await client.get_task(task["task_id"])
            assert final["state"] == "PAID"
            digest = hashlib.sha256(bytes.fromhex(final["preimage"])).hexdigest()
            assert digest == second["payment_hash"]
        finally:
            await close_stack(rebuilt)
