"""The settlement entry carries the payout's preimage, which must hash to the payout's hash;
events from before it (no ``payout_preimage_hex``) still fold."""

from __future__ import annotations

import hashlib

import pytest
from support.task_builders import PREIMAGE, T0, task_in

from taskhold.errors import Invalid
from taskhold.tasks import TaskState, decide
from taskhold.tasks import commands as c
from taskhold.tasks import events as e

PAYOUT_PREIMAGE = "55" * 32
PAYOUT_HASH = hashlib.sha256(bytes.fromhex(PAYOUT_PREIMAGE)).hexdigest()


def _release(payout_preimage_hex: str | None) -> c.CompleteRelease:
    return c.CompleteRelease(
        actor="system",
        at=T0 + 50,
        preimage_hex=PREIMAGE,
        payout_payment_hash_hex=PAYOUT_HASH,
        payout_fee_msat=0,
        payout_preimage_hex=payout_preimage_hex,
    )


def test_the_release_entry_reveals_the_payout_preimage() -> None:
    [released] = decide(task_in(TaskState.VERIFIED), _release(PAYOUT_PREIMAGE), frozenset())
    assert isinstance(released, e.ReleaseCompleted)
    assert released.payout_preimage_hex == PAYOUT_PREIMAGE


@pytest.mark.parametrize("wrong", ["66" * 32, "55" * 31, "not hex"])
def test_a_payout_preimage_of_another_hash_is_refused(wrong: str) -> None:
    with pytest.raises(Invalid) as refused:
        decide(task_in(TaskState.VERIFIED), _release(wrong), frozenset())
    assert refused.value.code == "bad_preimage"


def test_a_release_event_from_before_the_payout_proof_still_folds() -> None:
    old = {
        "type": "ReleaseCompleted",
        "at": T0,
        "actor": "system",
        "preimage_hex": PREIMAGE,
        "payout_payment_hash_hex": PAYOUT_HASH,
        "payout_fee_msat": 0,
    }
    event = e.event_from_dict(old)
    assert isinstance(event, e.ReleaseCompleted) and event.payout_preimage_hex is None
    deposit = e.event_from_dict({**old, "type": "DepositPaidOut", "depositor": "aa" * 32})
    assert isinstance(deposit, e.DepositPaidOut) and deposit.payout_preimage_hex is None
