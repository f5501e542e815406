"""Signed writes through the API: races, forgeries, replays, idempotency, clear refusals."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import created, funded

from taskhold.client import TaskholdAPIError
from taskhold.nostr import NostrKeys
from taskhold.store.models import RequestEventRow, TransitionRow


async def _counts(stack: Stack) -> tuple[int, int]:
    async with stack.services.store.transaction() as tx:
        transitions = (await tx.session.execute(select(func.count(TransitionRow.version)))).scalar()
        requests = (await tx.session.execute(select(func.count(RequestEventRow.event_id)))).scalar()
    return int(transitions or 0), int(requests or 0)


def _signed(
    keys: NostrKeys,
    op: str,
    content: dict[str, object],
    task_id: str | None,
    created_at: int | None = None,
    kind: int = 3912,
) -> dict[str, object]:
    tags = [["op", op]] + ([["task", task_id]] if task_id else [])
    return keys.sign_event(kind, json.dumps(content), tags, created_at or int(time.time()))


async def _post(stack: Stack, path: str, event: dict[str, object], key: str) -> httpx.Response:
    return await stack.http.post(path, json={"request": event}, headers={"Idempotency-Key": key})


async def test_fifty_concurrent_claims_have_exactly_one_winner(stack: Stack) -> None:
    employer = stack.client()
    task = await funded(stack, employer)
    workers = [stack.client() for _ in range(50)]

    results = await asyncio.gather(
        *(w.claim(task["task_id"]) for w in workers), return_exceptions=True
    )

    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, TaskholdAPIError)]
    assert len(winners) == 1
    assert len(losers) == 49
    assert {e.status for e in losers} == {409}
    final = await employer.get_task(task["task_id"])
    assert final["state"] == "CLAIMED"
    assert final["worker_pubkey"] == winners[0]["worker_pubkey"]
    history = (await employer.transitions(task["task_id"]))["transitions"]
    assert [t["event_type"] for t in history].count("TaskClaimed") == 1


async def test_forged_signature_is_refused_and_nothing_written(stack: Stack) -> None:
    employer_keys = NostrKeys.generate()
    task = await created(stack, stack.client(employer_keys))
    before = await _counts(stack)
    event = _signed(employer_keys, "fund", {}, task["task_id"])
    event["content"] = json.dumps({"tampered": True})

    response = await _post(stack, f"/v1/tasks/{task['task_id']}/funding", event, "k1")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "bad_signature"
    assert await _counts(stack) == before


async def test_replayed_request_is_refused_and_nothing_written(stack: Stack) -> None:
    employer_keys = NostrKeys.generate()
    task = await created(stack, stack.client(employer_keys))
    event = _signed(employer_keys, "fund", {}, task["task_id"])
    first = await _post(stack, f"/v1/tasks/{task['task_id']}/funding", event, "first")
    assert first.status_code == 200
    before = await _counts(stack)

    replay = await _post(stack, f"/v1/tasks/{task['task_id']}/funding", event, "second")

    assert replay.status_code == 409
    assert replay.json()["code"] == "replayed_request"
    assert await _counts(stack) == before


async def test_wrong_author_is_refused_and_nothing_written(stack: Stack) -> None:
    task = await created(stack, stack.client())
    before = await _counts(stack)

    stranger = stack.client()
    try:
        await stranger.request_funding(task["task_id"])
        raise AssertionError("a stranger funded someone else's task")
    except TaskholdAPIError as exc:
        assert exc.status == 403
        assert exc.code == "wrong_role"
        assert "employer" in exc.detail
    assert await _counts(stack) == before


async def test_stale_request_is_refused(stack: Stack) -> None:
    keys = NostrKeys.generate()
    event = _signed(
        keys,
        "create",
        {"title": "x", "amount_msat": 100_000, "deadline_at": int(time.time()) + 600},
        None,
        created_at=int(time.time()) - 3600,
    )
    response = await _post(stack, "/v1/tasks", event, "stale")
    assert response.status_code == 422
    assert response.json()["code"] == "stale_request"
    assert await _counts(stack) == (0, 0)


async def test_retried_write_returns_the_first_answer(stack: Stack) -> None:
    keys = NostrKeys.generate()
    event = _signed(
        keys,
        "create",
        {"title": "Once", "amount_msat": 100_000, "deadline_at": int(time.time()) + 600},
        None,
    )
    first = await _post(stack, "/v1/tasks", event, "same-key")
    again = await _post(stack, "/v1/tasks", event, "same-key")

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert await _counts(stack) == (1, 1)


async def test_reused_idempotency_key_for_another_request_is_refused(stack: Stack) -> None:
    keys = NostrKeys.generate()
    one = _signed(
        keys,
        "create",
        {"title": "One", "amount_msat": 100_000, "deadline_at": int(time.time()) + 600},
        None,
    )
    two = _signed(
        keys,
        "create",
        {"title": "Two", "amount_msat": 100_000, "deadline_at": int(time.time()) + 600},
        None,
    )
    assert (await _post(stack, "/v1/tasks", one, "k")).status_code == 201
    response = await _post(stack, "/v1/tasks", two, "k")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"


async def test_missing_idempotency_key_is_a_clear_400(stack: Stack) -> None:
    keys = NostrKeys.generate()
    event = _signed(
        keys,
        "create",
        {"title": "x", "amount_msat": 100_000, "deadline_at": int(time.time()) + 600},
        None,
    )
    response = await stack.http.post("/v1/tasks", json={"request": event})
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_missing"


async def test_bad_content_is_a_422_naming_the_field(stack: Stack) -> None:
    employer = stack.client()
    try:
        await employer.create_task("t", "d", -5, int(time.time()) + 600)
        raise AssertionError("negative amount accepted")
    except TaskholdAPIError as exc:
        assert exc.status == 422
        assert "amount_msat" in exc.detail
    assert await _counts(stack) == (0, 0)


async def test_too_long_task_is_refused_with_the_cap(stack: Stack) -> None:
    """Past what renewal covers, the refusal names the limit."""
    employer = stack.client()
    try:
        await employer.create_task("long", "", 100_000, int(time.time()) + 30 * 86_400)
        raise AssertionError("a month-long task was accepted")
    except TaskholdAPIError as exc:
        assert exc.status == 422
        assert exc.code == "task_too_long"
        assert str(stack.settings.max_task_duration_s) in exc.detail
    assert await _counts(stack) == (0, 0)


async def test_without_renewal_a_task_longer_than_one_hold_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    stack = await open_stack(stack_settings(tmp_path, database_url, max_task_duration_s=0))
    try:
        await stack.client().create_task("long", "", 100_000, int(time.time()) + 10 * 86_400)
        raise AssertionError("a task longer than one hold was accepted without renewal")
    except TaskholdAPIError as exc:
        assert exc.status == 422
        assert exc.code == "hold_too_long"
    finally:
        await close_stack(stack)


async def test_unknown_task_is_404_problem_json(stack: Stack) -> None:
    response = await stack.http.get("/v1/tasks/" + "0" * 64)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_malformed_body_is_422_not_500(stack: Stack) -> None:
    response = await stack.http.post(
        "/v1/tasks",
        content=b"{not json",
        headers={"Idempotency-Key": "x", "content-type": "application/json"},
    )
    assert response.status_code == 422
    response = await stack.http.post(
        "/v1/tasks", json={"request": "nope"}, headers={"Idempotency-Key": "y"}
    )
    assert response.status_code == 422


async def test_proof_failing_the_acceptance_spec_is_refused_with_reasons(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    try:
        await worker.submit_proof(task["task_id"], {"url": "not a url"}, invoice)
        raise AssertionError("a bad proof was accepted")
    except TaskholdAPIError as exc:
        assert exc.status == 422
        assert exc.code == "proof_rejected"
        assert "url" in exc.detail
    assert (await worker.get_task(task["task_id"]))["state"] == "CLAIMED"
    last = (await worker.transitions(task["task_id"]))["transitions"][-1]
    assert last["event_type"] == "ProofRefused"  # the verdict is public too
    assert last["event"]["problems"] == ["field 'url' must be an http(s) URL"]
    assert last["request"]["kind"] == 3911


async def test_payout_invoice_for_the_wrong_amount_is_refused(stack: Stack) -> None:
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["amount_msat"], expiry_seconds=86_400)
    try:
        await worker.submit_proof(task["task_id"], {"url": "https://example.org"}, invoice)
        raise AssertionError("an invoice for the wrong amount was accepted")
    except TaskholdAPIError as exc:
        assert exc.code == "wrong_amount"
        assert str(task["payout_msat"]) in exc.detail


async def test_proof_by_someone_other_than_the_worker_is_forbidden(stack: Stack) -> None:
    employer, worker, other = stack.client(), stack.client(), stack.client()
    task = await funded(stack, employer)
    await worker.claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    try:
        await other.submit_proof(task["task_id"], {"url": "https://example.org"}, invoice)
        raise AssertionError("a stranger submitted proof")
    except TaskholdAPIError as exc:
        assert exc.status == 403
