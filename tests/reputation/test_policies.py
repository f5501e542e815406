"""Policies on writes: proof of work for pubkeys without a record, rate limits, review windows
by score, and how /v1/info states them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from support.reputation_flows import paid
from support.stacks import Stack
from support.task_flows import ACCEPTANCE, AMOUNT_MSAT, created

from taskhold.api.ratelimit import TokenBuckets
from taskhold.client import TaskholdAPIError
from taskhold.nostr import NostrKeys
from taskhold.nostr.pow import pow_bits
from taskhold.reputation.policy import ReputationPolicy


def _create_body() -> dict[str, Any]:
    return {
        "title": "Write a haiku",
        "amount_msat": AMOUNT_MSAT,
        "deadline_at": int(time.time()) + 3600,
        "acceptance": ACCEPTANCE,
    }


async def test_a_write_without_the_required_pow_is_refused_naming_the_difficulty(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom(pow_max_bits=10)
    keys = NostrKeys.generate()
    body = _create_body()
    event = keys.sign_event(3912, json.dumps(body), [["op", "create"]], int(time.time()))
    while pow_bits(event["id"]) >= 10:  # one chance in a thousand: sign a different one
        body["title"] += "!"
        event = keys.sign_event(3912, json.dumps(body), [["op", "create"]], int(time.time()))
    response = await stack.http.post(
        "/v1/tasks", json={"request": event}, headers={"Idempotency-Key": "k1"}
    )
    assert response.status_code == 403
    problem = response.json()
    assert problem["code"] == "pow_required"
    assert problem["required_bits"] == 10
    assert "difficulty 10" in problem["detail"]
    assert '["nonce", <n>, "10"]' in problem["detail"]

    client = stack.client(keys)
    client._auto_pow = False
    with pytest.raises(TaskholdAPIError) as refused:
        await client.create_task("t", "d", AMOUNT_MSAT, int(time.time()) + 3600)
    assert refused.value.code == "pow_required"
    client.pow_difficulty = 10
    task = await client.create_task("t", "d", AMOUNT_MSAT, int(time.time()) + 3600)
    assert pow_bits(task["task_id"]) >= 10


async def test_a_lucky_id_without_a_committed_target_is_refused(open_custom: Any) -> None:
    stack: Stack = await open_custom(pow_max_bits=4)
    keys = NostrKeys.generate()
    for attempt in range(2000):
        event = keys.sign_event(
            3912,
            json.dumps(_create_body()),
            [["op", "create"], ["n", str(attempt)]],
            int(time.time()),
        )
        if pow_bits(event["id"]) >= 4:
            break
    response = await stack.http.post(
        "/v1/tasks", json={"request": event}, headers={"Idempotency-Key": "k2"}
    )
    assert (response.status_code, response.json()["code"]) == (403, "pow_required")
    assert "commits to 0" in response.json()["detail"]


async def test_the_client_mines_when_asked_and_a_record_lowers_the_difficulty(
    open_custom: Any,
) -> None:
    stack: Stack = await open_custom(
        pow_max_bits=8, pow_free_score=500, reputation_max_staleness_s=0
    )
    employer, worker = stack.client(), stack.client()
    await created(stack, employer)  # auto_pow: refused once, mined, sent again
    assert employer.pow_difficulty == 8
    await paid(stack, employer, worker)
    await stack.services.reputation.sync()
    score = (await employer.reputation())["score"]
    policy = ReputationPolicy(pow_max_bits=8, pow_free_score=500)
    assert 0 < policy.pow_bits_for(score) < 8
    fresh_client = stack.client(stack_keys(employer))
    await created(stack, fresh_client)
    assert fresh_client.pow_difficulty == policy.pow_bits_for(score)


def stack_keys(client: Any) -> NostrKeys:
    keys: NostrKeys = client._keys
    return keys


async def test_writes_over_the_pubkey_rate_are_429_with_retry_after(open_custom: Any) -> None:
    stack: Stack = await open_custom(rate_limit_pubkey_per_s=0.5, rate_limit_pubkey_burst=2)
    employer, other = stack.client(), stack.client()
    await created(stack, employer)
    await created(stack, employer)
    with pytest.raises(TaskholdAPIError) as limited:
        await created(stack, employer)
    assert (limited.value.status, limited.value.code) == (429, "rate_limited")
    assert limited.value.retry_after_s == 2
    assert "pubkey" in limited.value.detail
    await created(stack, other)  # another pubkey has its own bucket


async def test_writes_over_the_ip_rate_are_429_with_retry_after(open_custom: Any) -> None:
    stack: Stack = await open_custom(rate_limit_ip_per_s=0.1, rate_limit_ip_burst=3)
    for _ in range(3):
        await created(stack, stack.client())
    response = await stack.http.post(
        "/v1/tasks", json={"request": {}}, headers={"Idempotency-Key": "k"}
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "10"
    assert response.json()["code"] == "rate_limited"
    assert (await stack.http.get("/v1/info")).status_code == 200  # reads are not limited


def test_token_buckets_refill_at_their_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(2.0, 3, clock=lambda: now[0], max_keys=2)
    assert [buckets.take("a") for _ in range(3)] == [None, None, None]
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("a") is None
    buckets.take("b")
    buckets.take("c")  # "a" is forgotten: it starts full again
    assert [buckets.take("a") for _ in range(3)] == [None, None, None]
    assert TokenBuckets(0, 1).take("x") is None


def test_review_windows_shrink_with_the_lower_known_score() -> None:
    policy = ReputationPolicy(review_window_min_s=3600)
    day = 86_400
    assert policy.review_window_for(None, None, day) == day
    assert policy.review_window_for(599, None, day) == day
    assert policy.review_window_for(600, None, day) == day // 2
    assert policy.review_window_for(900, 700, day) == day // 2
    assert policy.review_window_for(900, 800, day) == day // 4
    assert policy.review_window_for(900, None, 7200) == 3600  # never below the floor
    assert policy.review_window_for(900, None, 600) == 600  # never longer than the default


def test_pow_difficulty_falls_with_the_score() -> None:
    policy = ReputationPolicy(pow_max_bits=16, pow_free_score=500)
    assert [policy.pow_bits_for(s) for s in (0, 1, 250, 499, 500, 900)] == [16, 16, 8, 1, 0, 0]
    assert ReputationPolicy(pow_max_bits=0).pow_bits_for(0) == 0


async def test_a_new_task_gets_the_full_default_window_until_a_worker_claims(
    open_custom: Any,
) -> None:
    """The window is fixed at claim (tests/reputation/test_deposits.py has the shrinking);
    before that the worker is unknown, so the hold is sized for the longest window."""
    stack: Stack = await open_custom(
        default_review_window_s=7200,
        review_window_good_score=1,
        review_window_good_pct=50,
        review_window_min_s=600,
        reputation_max_staleness_s=0,
    )
    employer, worker = stack.client(), stack.client()
    await paid(stack, employer, worker)
    assert (await employer.reputation())["score"] >= 1
    second = await created(stack, employer)
    assert second["review_window_s"] == 7200
    chosen = await created(stack, employer, review_window_s=5000)
    assert chosen["review_window_s"] == 5000  # an employer's explicit choice stands


async def test_info_states_the_reputation_rules(open_custom: Any) -> None:
    stack: Stack = await open_custom(pow_max_bits=12)
    info = (await stack.http.get("/v1/info")).json()["reputation"]
    assert info["score_version"] == "2"
    assert info["policy"]["pow_max_bits"] == 12
    assert info["rate_limits"]["per_pubkey_per_s"] == stack.settings.rate_limit_pubkey_per_s
    assert info["reputation_pubkey"] != stack.services.signer.get_public_key()
    assert info["deposits"]["ops"]["lock"] == "deposit"
    assert info["deposits"]["pct_of_amount_at_score_0"] == stack.settings.deposit_pct
