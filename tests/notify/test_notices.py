"""NIP-17 notifications: at each step of a run, whoever must act next, and only they, is told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from support.notices import Inbox, gift_wraps, opened_by
from support.renewal_flows import long_task, opened_renewal
from support.stacks import Stack
from support.task_flows import created, funded

from taskhold.nostr import NostrKeys
from taskhold.settings import Settings


async def _submit(stack: Stack, worker: Any, task: dict[str, Any]) -> dict[str, Any]:
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    return await worker.submit_proof(task["task_id"], {"url": "https://example.org/h"}, invoice)


async def test_each_step_tells_the_party_that_must_act(
    open_custom: Any, keys: dict[str, NostrKeys]
) -> None:
    stack: Stack = await open_custom(arbiters=[keys["arbiter"].pubkey_hex])
    employer, worker = stack.client(keys["employer"]), stack.client(keys["worker"])
    inbox = Inbox(stack, keys)

    task = await created(stack, employer)
    task_id = task["task_id"]
    assert await inbox.new() == set()
    funding = (await employer.request_funding(task_id))["funding"]
    assert await inbox.new() == {("employer", "fund", task_id)}
    await stack.world.employer.send_payment(funding["payment_request"])
    await stack.settle_engine(1)
    assert await inbox.new() == set()  # an open task waits on nobody in particular
    await worker.claim(task_id)
    assert await inbox.new() == {("worker", "submit_proof", task_id)}
    await _submit(stack, worker, task)
    assert await inbox.new() == {("employer", "approve", task_id)}
    await employer.reject(task_id, "not a haiku")
    assert await inbox.new() == {("worker", "answer_rejection", task_id)}
    await worker.open_dispute(task_id, "it is a haiku")
    assert await inbox.new() == {
        ("employer", "respond_to_dispute", task_id),
        ("arbiter", "resolve_dispute", task_id),
    }
    await stack.client(keys["arbiter"]).resolve_dispute(task_id, "worker", "it is")
    await stack.settle_engine()
    assert (await employer.get_task(task_id))["state"] == "PAID"
    assert await inbox.new() == set()


async def test_a_message_says_the_action_and_its_deadline(
    stack: Stack, keys: dict[str, NostrKeys]
) -> None:
    employer, worker = stack.client(keys["employer"]), stack.client(keys["worker"])
    task = await created(stack, employer)
    funding = (await employer.request_funding(task["task_id"]))["funding"]
    await stack.world.employer.send_payment(funding["payment_request"])
    await stack.settle_engine(1)
    await worker.claim(task["task_id"])
    submitted = await _submit(stack, worker, task)

    told = {m.tag("action"): m for m in opened_by(keys["employer"], await gift_wraps(stack))}
    assert set(told) == {"fund", "approve"}
    fund, approve = told["fund"], told["approve"]
    assert fund.sender == stack.services.signer.get_public_key()
    assert fund.kind == stack.settings.kind_private_message
    assert fund.tag("deadline") == str(funding["expires_at"])
    review_ends = submitted["submitted_at"] + submitted["review_window_s"]
    assert approve.tag("deadline") == str(review_ends)
    assert task["task_id"] in approve.content and "approve" in approve.content
    (proof,) = opened_by(keys["worker"], await gift_wraps(stack))
    assert proof.tag("action") == "submit_proof"
    assert proof.tag("deadline") == str(task["deadline_at"])


async def test_a_wait_is_told_once(stack: Stack, keys: dict[str, NostrKeys]) -> None:
    """A transition that leaves the wait as it was (a new payout invoice while the submission
    awaits review) tells nobody again; a new wait of the same kind (a resubmission) does."""
    employer, worker = stack.client(keys["employer"]), stack.client(keys["worker"])
    inbox = Inbox(stack, keys)
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    await _submit(stack, worker, task)
    await inbox.new()
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.update_payout_invoice(task["task_id"], invoice)
    assert await inbox.new() == set()
    await employer.reject(task["task_id"], "again")
    await _submit(stack, worker, task)
    assert await inbox.new() == {
        ("worker", "answer_rejection", task["task_id"]),
        ("employer", "approve", task["task_id"]),
    }


async def test_a_direct_offer_tells_the_named_worker(
    stack: Stack, keys: dict[str, NostrKeys]
) -> None:
    employer = stack.client(keys["employer"])
    inbox = Inbox(stack, keys)
    task = await funded(
        stack, employer, claim_mode="direct", direct_worker=keys["worker"].pubkey_hex
    )
    assert await inbox.new() == {
        ("employer", "fund", task["task_id"]),
        ("worker", "claim", task["task_id"]),
    }


async def test_a_renewal_tells_the_employer(stack: Stack, keys: dict[str, NostrKeys]) -> None:
    employer = stack.client(keys["employer"])
    task = await long_task(stack, employer)
    inbox = Inbox(stack, keys)
    await inbox.new()
    renewal = await opened_renewal(stack, employer, task)
    assert await inbox.new() == {("employer", "renew", task["task_id"])}
    (message,) = [
        m
        for m in opened_by(keys["employer"], await gift_wraps(stack))
        if m.tag("action") == "renew"
    ]
    assert message.tag("deadline") == str(renewal["expires_at"])


async def test_each_message_opens_only_with_its_addressee_key(
    open_custom: Any, keys: dict[str, NostrKeys]
) -> None:
    stack: Stack = await open_custom(arbiters=[keys["arbiter"].pubkey_hex])
    employer, worker = stack.client(keys["employer"]), stack.client(keys["worker"])
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    await _submit(stack, worker, task)
    await employer.reject(task["task_id"], "no")
    await worker.open_dispute(task["task_id"], "yes")

    operator = NostrKeys.from_secret_hex(
        (stack.settings.data_dir / "keys" / "operator.key").read_text().strip()
    )
    everyone = {**keys, "operator": operator, "stranger": NostrKeys.generate()}
    wraps = await gift_wraps(stack)
    assert len(wraps) == 6
    for wrap in wraps:
        addressee = next(tag[1] for tag in wrap["tags"] if tag[0] == "p")
        assert wrap["pubkey"] not in {k.pubkey_hex for k in everyone.values()}  # one-time key
        readers = {name for name, k in everyone.items() if opened_by(k, [wrap])}
        assert readers == {name for name, k in everyone.items() if k.pubkey_hex == addressee}, wrap[
            "id"
        ]
        assert len(readers) == 1


async def test_notifications_can_be_turned_off(open_custom: Any) -> None:
    stack: Stack = await open_custom(notifications_enabled=False)
    employer = stack.client()
    task = await created(stack, employer)
    await employer.request_funding(task["task_id"])
    assert await gift_wraps(stack) == []


async def test_a_notification_commits_with_its_transition_or_not_at_all(
    stack: Stack, keys: dict[str, NostrKeys]
) -> None:
    """The gift wrap is queued in the transaction that records the transition: when that
    transaction fails after the notification was made, neither is kept, and the retried
    request tells the employer once."""
    employer = stack.client(keys["employer"])
    inbox = Inbox(stack, keys)
    task = await created(stack, employer)

    async def fail_after_the_hooks(*_: object) -> None:
        raise RuntimeError("the database went away before the commit")

    hooks = stack.services.store.log.hooks  # type: ignore[union-attr]
    hooks.append(fail_after_the_hooks)
    with pytest.raises(Exception):  # noqa: B017 (whatever reaches the client)
        await employer.request_funding(task["task_id"])
    assert await gift_wraps(stack) == []
    hooks.remove(fail_after_the_hooks)
    await employer.request_funding(task["task_id"])
    assert await inbox.new() == {("employer", "fund", task["task_id"])}
    assert len(await gift_wraps(stack)) == 1


def test_the_nip17_kinds_are_the_nips(tmp_path: Path) -> None:
    """Clients find notifications by NIP-17's kinds, which nostr-sdk builds: a setting that
    says otherwise would only hide them, so it is refused at start."""
    assert (Settings(data_dir=tmp_path).kind_gift_wrap, Settings().kind_private_message) == (
        1059,
        14,
    )
    with pytest.raises(ValidationError, match="NIP-17"):
        Settings(data_dir=tmp_path, kind_gift_wrap=1060)
