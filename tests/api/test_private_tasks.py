"""Private tasks over the API, on both databases: the details travel sealed to the parties, the
log and the database keep their commitment and ciphertexts, a worker who claims gets a copy
from the operator, and a malformed private create is refused with its own code."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded, read_log
from test_secrets import _database_dump
from test_writes import _counts, _post, _signed

from taskhold.client import TaskholdAPIError, TaskholdClient, payout_terms
from taskhold.keys.operator import OPERATOR_PREVIOUS, operator_key_file
from taskhold.nostr import NostrKeys
from taskhold.nostr.confidential import commitment, make_payload, seal
from taskhold.publiclog.rotation import rotate_operator


async def test_a_private_task_is_sealed_to_its_parties_and_the_worker_gets_a_copy(
    open_custom: Callable[..., Any],
) -> None:
    arbiter_keys = NostrKeys.generate()
    stack: Stack = await open_custom(arbiters=[arbiter_keys.pubkey_hex])
    employer, worker, stranger = stack.client(), stack.client(), stack.client()
    arbiter = stack.client(arbiter_keys)
    secret = "meet at " + secrets.token_hex(8)
    operator = stack.services.signer.get_public_key()

    task = await funded(stack, employer, description=secret, private=True)

    assert task["visibility"] == "private"
    assert task["description"] == ""
    assert len(task["details_hash"]) == 64
    assert set(task["details_sealed"]) == {employer.pubkey_hex, operator, arbiter_keys.pubkey_hex}
    assert employer.open_details(task) == secret
    assert arbiter.open_details(task) == secret
    assert worker.open_details(task) is None

    claimed = await worker.claim(task["task_id"])
    copy = claimed["details_sealed"][worker.pubkey_hex]
    assert copy["sender"] == operator
    assert worker.open_details(claimed) == secret
    assert stranger.open_details(await stranger.get_task(task["task_id"])) is None

    log = await read_log(stack)
    created = json.loads(log[0]["content"])
    assert created["event"]["visibility"] == "private"
    assert created["event"]["details_hash"] == task["details_hash"]
    claim_entry = next(e for e in log if ["op", "TaskClaimed"] in e["tags"])
    assert worker.pubkey_hex in json.loads(claim_entry["content"])["event"]["details_sealed"]
    assert secret not in json.dumps(log)
    assert secret not in await _database_dump(stack)


async def test_a_public_task_is_unchanged(stack: Stack) -> None:
    employer = stack.client()
    task = await funded(stack, employer, description="in the clear")
    assert task["visibility"] == "public"
    assert task["description"] == "in the clear"
    assert task["details_hash"] is None and task["details_sealed"] == {}
    assert employer.open_details(task) == "in the clear"


def _private_create(
    employer: NostrKeys,
    recipients: list[str],
    *,
    body: Any = None,
    details_hash: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    payload = make_payload({"description": "sealed"} if body is None else body)
    content: dict[str, Any] = {
        "title": "Private",
        "amount_msat": 100_000,
        "deadline_at": int(time.time()) + 600,
        "visibility": "private",
        "details_hash": details_hash or commitment(payload),
        "details_sealed": seal(employer, recipients, payload),
    }
    content.update(overrides)
    return content


def _case(name: str, operator: str, employer: NostrKeys) -> tuple[dict[str, Any], str]:
    both = [employer.pubkey_hex, operator]
    other = NostrKeys.generate().pubkey_hex
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "no-sealed-copies": (
            {
                "title": "Private",
                "amount_msat": 100_000,
                "deadline_at": int(time.time()) + 600,
                "visibility": "private",
            },
            "private_task_malformed",
        ),
        "clear-description-too": (
            _private_create(employer, both, description="leaked"),
            "private_task_malformed",
        ),
        "commitment-on-a-public-task": (
            _private_create(employer, both, visibility="public"),
            "private_task_malformed",
        ),
        "no-copy-for-the-operator": (
            _private_create(employer, [employer.pubkey_hex, other]),
            "sealed_copy_missing",
        ),
        "operator-copy-unreadable": (
            {
                **_private_create(employer, both),
                "details_sealed": {employer.pubkey_hex: "AAAA", operator: "AAAA"},
            },
            "sealed_content_invalid",
        ),
        "body-not-a-description": (
            _private_create(employer, both, body={"text": "sealed"}),
            "sealed_content_invalid",
        ),
        "hash-of-something-else": (
            _private_create(employer, both, details_hash="ab" * 32),
            "commitment_mismatch",
        ),
    }
    return cases[name]


@pytest.mark.parametrize(
    "name",
    [
        "no-sealed-copies",
        "clear-description-too",
        "commitment-on-a-public-task",
        "no-copy-for-the-operator",
        "operator-copy-unreadable",
        "body-not-a-description",
        "hash-of-something-else",
    ],
)
async def test_a_malformed_private_create_is_refused_and_writes_nothing(
    stack: Stack, name: str
) -> None:
    employer = NostrKeys.generate()
    content, code = _case(name, stack.services.signer.get_public_key(), employer)

    response = await _post(stack, "/v1/tasks", _signed(employer, "create", content, None), name)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert await _counts(stack) == (0, 0)


async def test_a_direct_private_task_needs_a_copy_for_its_worker(stack: Stack) -> None:
    employer = NostrKeys.generate()
    worker = NostrKeys.generate()
    operator = stack.services.signer.get_public_key()
    content = _private_create(
        employer,
        [employer.pubkey_hex, operator],
        claim_mode="direct",
        direct_worker=worker.pubkey_hex,
    )
    response = await _post(stack, "/v1/tasks", _signed(employer, "create", content, None), "d")
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "sealed_copy_missing"
    assert worker.pubkey_hex in response.json()["detail"]

    direct = TaskholdClient("http://taskhold.test", worker, http=stack.http)
    task = await stack.client(employer).create_task(
        "Private",
        "for you only",
        100_000,
        int(time.time()) + 600,
        claim_mode="direct",
        direct_worker=worker.pubkey_hex,
        private=True,
    )
    assert direct.open_details(task) == "for you only"


async def test_a_private_task_s_proof_goes_sealed_and_is_checked_in_memory(
    stack: Stack,
) -> None:
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer, description="private", private=True)
    task_id = task["task_id"]
    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    marker = secrets.token_hex(12)

    with pytest.raises(TaskholdAPIError) as clear:
        await worker.submit_proof(
            task_id, {"url": f"https://x.org/{marker}"}, invoice, sealed=False
        )
    assert clear.value.code == "private_task_malformed"
    with pytest.raises(TaskholdAPIError) as failing:
        await worker.submit_proof(task_id, {"note": marker}, invoice)
    assert failing.value.code == "proof_rejected"
    assert "url" in failing.value.detail and marker not in failing.value.detail

    submitted = await worker.submit_proof(task_id, {"url": f"https://x.org/{marker}"}, invoice)
    assert submitted["state"] == "SUBMITTED"
    assert submitted["proof"] == {} and len(submitted["proof_hash"]) == 64
    assert employer.open_proof(submitted) == {"url": f"https://x.org/{marker}"}
    assert worker.open_proof(submitted) == {"url": f"https://x.org/{marker}"}
    log = await read_log(stack)
    assert [tag for e in log for tag in e["tags"] if tag[0] == "op"][-2:] == [
        ["op", "ProofRefused"],
        ["op", "ProofSubmitted"],
    ]
    assert marker not in json.dumps(log)
    assert marker not in await _database_dump(stack)


async def test_a_sealed_proof_that_misses_its_hash_is_refused(stack: Stack) -> None:
    employer, worker_keys = stack.client(), NostrKeys.generate()
    worker = stack.client(worker_keys)
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    operator = stack.services.signer.get_public_key()
    payload = make_payload({"url": "https://example.org/x"})
    content = {
        "payout_invoice": invoice,
        "proof_hash": "ab" * 32,
        "proof_sealed": seal(worker_keys, [employer.pubkey_hex, operator], payload),
    }
    response = await _post_proof(stack, worker_keys, task["task_id"], content)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "commitment_mismatch"


async def _post_proof(
    stack: Stack, worker: NostrKeys, task_id: str, content: dict[str, Any]
) -> httpx.Response:
    """A proof with exactly ``content``, signed by ``worker`` against the task's head."""
    head = (await stack.client(worker).get_task(task_id))["log_head"]
    event = worker.sign_event(
        3911,
        json.dumps(content),
        [["op", "proof"], ["task", task_id], ["prev", head]],
        int(time.time()),
    )
    return await _post(stack, f"/v1/tasks/{task_id}/proof", event, "p")


def _seal_each(sender: NostrKeys, copies: dict[str, Any]) -> dict[str, str]:
    """One copy per reader, each of its own payload: what a dishonest sender can send."""
    return {reader: seal(sender, [reader], payload)[reader] for reader, payload in copies.items()}


async def test_an_employer_cannot_hand_the_worker_other_details_than_committed(
    open_custom: Callable[..., Any],
) -> None:
    """The operator can check only its own copy. An employer who seals the true details for the
    operator and different ones for the direct worker and the arbiter must not make them read
    what the commitment does not hold: the task keeps the operator's copies for them."""
    arbiter_keys, employer_keys, worker_keys = (NostrKeys.generate() for _ in range(3))
    stack: Stack = await open_custom(arbiters=[arbiter_keys.pubkey_hex])
    operator = stack.services.signer.get_public_key()
    honest = make_payload({"description": "the real work"})
    decoy = make_payload({"description": "something else"})
    content = {
        "title": "Private",
        "amount_msat": 100_000,
        "deadline_at": int(time.time()) + 600,
        "visibility": "private",
        "details_hash": commitment(honest),
        "claim_mode": "direct",
        "direct_worker": worker_keys.pubkey_hex,
        "details_sealed": _seal_each(
            employer_keys,
            {
                employer_keys.pubkey_hex: honest,
                operator: honest,
                worker_keys.pubkey_hex: decoy,
                arbiter_keys.pubkey_hex: decoy,
            },
        ),
    }
    response = await _post(stack, "/v1/tasks", _signed(employer_keys, "create", content, None), "x")
    assert response.status_code == 201, response.text
    task = await stack.client().get_task(response.json()["task_id"])

    for reader in (worker_keys, arbiter_keys):
        assert task["details_sealed"][reader.pubkey_hex]["sender"] == operator
        assert stack.client(reader).open_details(task) == "the real work"


async def test_a_worker_cannot_hand_the_employer_another_proof_than_checked(
    stack: Stack,
) -> None:
    """The acceptance spec ran on the operator's copy; the employer's copy must be that proof,
    not a decoy the worker sealed for them alone."""
    employer, worker_keys = stack.client(), NostrKeys.generate()
    worker = stack.client(worker_keys)
    task = await funded(stack, employer, description="private", private=True)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    operator = stack.services.signer.get_public_key()
    checked = make_payload({"url": "https://example.org/done"})
    decoy = make_payload({"url": "https://example.org/decoy"})
    content = {
        "payout_invoice_sealed": seal(worker_keys, [operator], invoice)[operator],
        "proof_hash": commitment(checked),
        "proof_sealed": _seal_each(worker_keys, {operator: checked, employer.pubkey_hex: decoy}),
        **payout_terms(invoice),
    }
    response = await _post_proof(stack, worker_keys, task["task_id"], content)
    assert response.status_code == 200, response.text

    submitted = await employer.get_task(task["task_id"])
    assert submitted["proof_sealed"][employer.pubkey_hex]["sender"] == operator
    assert employer.open_proof(submitted) == {"url": "https://example.org/done"}


async def test_a_worker_gets_the_details_after_a_key_rotation_and_is_never_let_in_blind(
    tmp_path: Path, database_url: str
) -> None:
    """A private task created before a key rotation: its operator copy is sealed to the old
    key, which the operator keeps, so a worker who claims after the rotation still gets a copy.
    Once no key the operator holds opens it, the claim is refused and nothing is written: a
    worker must not take a task it cannot read."""
    settings = stack_settings(tmp_path, database_url)
    stack = await open_stack(settings)
    try:
        employer = stack.client()
        tasks = [
            await funded(stack, employer, description=f"job {n}", private=True) for n in (1, 2)
        ]
    finally:
        await close_stack(stack)
    await rotate_operator(settings)
    stack = await open_stack(settings, world=stack.world)
    try:
        worker = stack.client()
        claimed = await worker.claim(tasks[0]["task_id"])
        assert claimed["details_sealed"][worker.pubkey_hex]["sender"] == (
            stack.services.signer.get_public_key()
        )
        assert worker.open_details(claimed) == "job 1"
    finally:
        await close_stack(stack)

    operator_key_file(settings.data_dir, OPERATOR_PREVIOUS).unlink()
    stack = await open_stack(settings, world=stack.world)
    try:
        before = len(await read_log(stack))
        with pytest.raises(TaskholdAPIError) as refused:
            await stack.client().claim(tasks[1]["task_id"])
        assert refused.value.status == 409 and refused.value.code == "details_unavailable"
        assert len(await read_log(stack)) == before
        assert (await stack.client().get_task(tasks[1]["task_id"]))["state"] == "FUNDED"
    finally:
        await close_stack(stack)


async def test_a_private_create_retried_under_its_key_gets_the_first_answer(stack: Stack) -> None:
    """Sealing draws a fresh salt and nonces each time, so a retry that sealed again would be a
    different request under the same key (idempotency_key_reused). The client resends the event
    it signed first: one task, the first answer."""
    employer = stack.client()
    deadline = int(time.time()) + 600
    first = await employer.create_task(
        "Private", "sealed once", 100_000, deadline, private=True, idempotency_key="k1"
    )
    again = await employer.create_task(
        "Private", "sealed once", 100_000, deadline, private=True, idempotency_key="k1"
    )
    assert again["task_id"] == first["task_id"]
    assert again["details_hash"] == first["details_hash"]
    assert await _counts(stack) == (1, 1)
    with pytest.raises(TaskholdAPIError) as other:
        await employer.create_task(
            "Private", "something else", 100_000, deadline, private=True, idempotency_key="k1"
        )
    assert other.value.code == "idempotency_key_reused"


async def test_a_sealed_proof_and_invoice_retried_under_their_key_get_the_first_answer(
    stack: Stack,
) -> None:
    """Each sealing is new ciphertext; the same call under the same key is still the same
    request: one proof entry, one invoice update, the first answers."""
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer, description="private", private=True)
    task_id = task["task_id"]
    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    proof = {"url": "https://example.org/once"}
    first = await worker.submit_proof(task_id, proof, invoice, idempotency_key="p1")
    again = await worker.submit_proof(task_id, proof, invoice, idempotency_key="p1")
    assert again["proof_hash"] == first["proof_hash"]
    other = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    updated = await worker.update_payout_invoice(task_id, other, idempotency_key="u1")
    assert await worker.update_payout_invoice(task_id, other, idempotency_key="u1") == updated
    ops = [tag[1] for e in await read_log(stack) for tag in e["tags"] if tag[0] == "op"]
    assert ops.count("ProofSubmitted") == 1 and ops.count("PayoutRequestUpdated") == 1


async def test_a_private_task_s_invoice_in_the_clear_is_refused(stack: Stack) -> None:
    """The invoice names the payee's node: on a private task it goes sealed to the operator,
    at the proof and in any later update; in the clear it is refused and nothing is written."""
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer, description="private", private=True)
    task_id = task["task_id"]
    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    before = await _counts(stack)
    with pytest.raises(TaskholdAPIError) as clear_proof:
        await worker.submit_proof(task_id, {"url": "https://x.org/a"}, invoice, seal_invoice=False)
    assert clear_proof.value.code == "private_task_malformed"
    assert "payout_invoice_sealed" in clear_proof.value.detail
    await worker.submit_proof(task_id, {"url": "https://x.org/a"}, invoice)
    with pytest.raises(TaskholdAPIError) as clear_update:
        await worker.update_payout_invoice(task_id, invoice, seal_invoice=False)
    assert clear_update.value.code == "private_task_malformed"
    assert (await _counts(stack))[0] == before[0] + 1
    assert invoice not in json.dumps(await read_log(stack))
