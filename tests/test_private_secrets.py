"""A private task's details, proof and payout invoice are nowhere in the clear: after a run to
PAID, every event on the relay, every row of every table, every log line and every API answer
is searched for a random marker put into the description and the proof, and for the worker's
invoice (sealed to the operator by the client, as for any private task); the commitments to
them, and the invoice's signed hash, are on the relay and in the database."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import pytest
import structlog
from support.relays import drain
from support.stacks import close_stack, open_stack, stack_settings
from support.task_flows import funded
from test_secrets import _database_dump

from taskhold.lightning.base import InvoiceState
from taskhold.nostr import NostrKeys
from taskhold.nostr.embedded import EmbeddedRelay


async def test_a_private_run_leaves_no_plaintext_on_the_relay_in_the_logs_or_the_database(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    relay = EmbeddedRelay(tmp_path / "relay")
    url = await relay.start()
    arbiter = NostrKeys.generate()
    stack = await open_stack(
        stack_settings(tmp_path, database_url, relays=[url], arbiters=[arbiter.pubkey_hex])
    )
    marker = secrets.token_hex(16)
    caplog.set_level(logging.DEBUG)
    try:
        with structlog.testing.capture_logs() as logs:
            employer, worker = stack.client(), stack.client()
            task = await funded(
                stack,
                employer,
                title="An errand",
                description=f"the code word is {marker}",
                private=True,
            )
            task_id = task["task_id"]
            claimed = await worker.claim(task_id)
            assert marker in str(worker.open_details(claimed))
            invoice = await stack.world.worker.create_invoice(
                task["payout_msat"], expiry_seconds=86_400
            )
            submitted = await worker.submit_proof(
                task_id, {"url": f"https://example.org/{marker}"}, invoice
            )
            await employer.approve(task_id)
            await stack.settle_engine()
            final = await employer.get_task(task_id)
            assert final["state"] == "PAID"
            payout_hash = submitted["payout_invoice"].removeprefix("sealed:")
            assert payout_hash == final["payout_payment_hash"]
            paid = await stack.world.worker.lookup_invoice(bytes.fromhex(payout_hash))
            assert paid.state is InvoiceState.SETTLED
            answers = json.dumps(
                [
                    claimed,
                    submitted,
                    final,
                    await worker.get_task(task_id),
                    await employer.transitions(task_id),
                    await employer.list_tasks(),
                ]
            )
            publisher = stack.services.publisher
            assert publisher is not None and stack.services.relay_pool is not None
            await drain(publisher)
            assert await publisher.pending() == 0
            on_relay = await stack.services.relay_pool.fetch({"limit": 500})
        dump = await _database_dump(stack)
    finally:
        await close_stack(stack)
        await relay.stop()

    relay_text = json.dumps(on_relay)
    log_text = json.dumps(logs, default=str) + caplog.text
    assert {"TaskCreated", "ProofSubmitted"} <= {
        tag[1] for event in on_relay for tag in event["tags"] if tag[0] == "op"
    }
    for where, text in (
        ("relay", relay_text),
        ("database", dump),
        ("log lines", log_text),
        ("API answers", answers),
    ):
        assert marker not in text, f"the marker is in the {where}"
        for spelling in (invoice, invoice.upper(), invoice.removeprefix("lnbcrt")):
            assert spelling not in text, f"the payout invoice is in the {where}"
    assert payout_hash in relay_text and "payout_invoice_sealed" in relay_text
    for commitment in (final["details_hash"], submitted["proof_hash"]):
        assert commitment in relay_text and commitment in dump
