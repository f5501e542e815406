"""The sealed form of a payout invoice (``taskhold.payments.sealed``): it names its hash and
keys, opens only with the operator key it was sealed to, and is never shown with its
ciphertext; a payout whose sealed invoice no longer opens fails and is recorded, never paid to
anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded

from taskhold.nostr import NostrKeys
from taskhold.nostr.confidential import seal
from taskhold.payments.sealed import (
    SealedContentError,
    is_sealed,
    open_invoice,
    payment_hash_of,
    sealed_form,
    sealed_hash,
    shown,
)
from taskhold.publiclog.rotation import rotate_operator

HASH = "ab" * 32
INVOICE = "lnbcrt1invoice"


def _form(payee: NostrKeys, operator: NostrKeys) -> str:
    ciphertext = seal(payee, [operator.pubkey_hex], INVOICE)[operator.pubkey_hex]
    return sealed_form(HASH, payee.pubkey_hex, operator.pubkey_hex, ciphertext)


def test_a_sealed_form_opens_with_its_operator_key_only() -> None:
    payee, operator = NostrKeys.generate(), NostrKeys.generate()
    form = _form(payee, operator)
    assert is_sealed(form) and not is_sealed(INVOICE) and not is_sealed(None)
    assert sealed_hash(form) == payment_hash_of(form) == HASH
    assert open_invoice([operator], form) == INVOICE
    assert open_invoice([NostrKeys.generate(), operator], form) == INVOICE  # after a rotation
    assert open_invoice([], INVOICE) == INVOICE  # a clear invoice is as given
    for keys in ([payee], [NostrKeys.generate()], []):
        with pytest.raises(SealedContentError):
            open_invoice(keys, form)


def test_a_sealed_form_is_shown_as_its_hash_alone() -> None:
    form = _form(NostrKeys.generate(), NostrKeys.generate())
    assert shown(form) == f"sealed:{HASH}"
    assert shown(INVOICE) == INVOICE and shown(None) is None


@pytest.mark.parametrize(
    "form",
    [
        f"sealed:{HASH}",
        f"sealed:{'AB' * 32}:{HASH}:{HASH}:abc=",
        f"sealed:{HASH}:{HASH}:{HASH}:not base64!",
        f"sealed:{HASH}:{HASH}:{HASH}:abc:extra",
    ],
)
def test_a_malformed_sealed_form_is_refused(form: str) -> None:
    with pytest.raises(SealedContentError):
        sealed_hash(form)
    with pytest.raises(SealedContentError):
        open_invoice([NostrKeys.generate()], form)


async def test_a_sealed_invoice_the_operator_can_no_longer_open_fails_its_payout(
    stack: Stack,
) -> None:
    """The operator's key changed under a sealed invoice: the payout fails (the worker is asked
    for a new invoice), nothing is paid and the hold stays."""
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(
        task["task_id"], {"url": "https://example.org/x"}, invoice, seal_invoice=True
    )
    stack.services.engine.ctx.operator_keys = NostrKeys.generate()
    before = stack.world.worker.balance_msat
    await employer.approve(task["task_id"])
    await stack.run_pass()
    current = await worker.get_task(task["task_id"])
    assert current["state"] == "VERIFIED"
    assert current["payout_failures"] == 1
    assert "does not open" in current["last_payout_failure"]
    assert stack.world.worker.balance_msat == before


async def test_a_sealed_invoice_given_before_a_key_rotation_is_paid_after_it(
    tmp_path: Path, database_url: str
) -> None:
    """The worker sealed its invoice to the operator key of the day; the operator rotates its
    key before the approval. The rotated-away key is kept, so the payout opens and is paid:
    the worker is not asked for a new invoice."""
    settings = stack_settings(tmp_path, database_url)
    stack = await open_stack(settings)
    employer_keys = NostrKeys.generate()
    try:
        employer, worker = stack.client(employer_keys), stack.client()
        task = await funded(stack, employer)
        await worker.claim(task["task_id"])
        invoice = await stack.world.worker.create_invoice(
            task["payout_msat"], expiry_seconds=86_400
        )
        await worker.submit_proof(
            task["task_id"], {"url": "https://example.org/x"}, invoice, seal_invoice=True
        )
    finally:
        await close_stack(stack)
    old, new = await rotate_operator(settings)
    stack = await open_stack(settings, world=stack.world)
    try:
        assert stack.services.signer.get_public_key() == new.pubkey_hex != old.pubkey_hex
        employer = stack.client(employer_keys)
        before = stack.world.worker.balance_msat
        await employer.approve(task["task_id"])
        await stack.settle_engine()
        current = await employer.get_task(task["task_id"])
        assert current["state"] == "PAID" and current["payout_failures"] == 0
        assert stack.world.worker.balance_msat == before + task["payout_msat"]
    finally:
        await close_stack(stack)
