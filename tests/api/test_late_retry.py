"""A client that lost the answer to a write may retry the very same signed event under the same
Idempotency-Key after the ``created_at`` window has passed: it gets the first answer. Anything
else that old is still refused as stale."""

from __future__ import annotations

import json
import time

import httpx
from support.stacks import Stack

from taskhold.nostr import NostrKeys


def _create(keys: NostrKeys, title: str, created_at: int) -> dict[str, object]:
    content = {"title": title, "amount_msat": 100_000, "deadline_at": created_at + 3600}
    return keys.sign_event(3912, json.dumps(content), [["op", "create"]], created_at)


async def _post(stack: Stack, event: dict[str, object], key: str) -> httpx.Response:
    return await stack.http.post(
        "/v1/tasks", json={"request": event}, headers={"Idempotency-Key": key}
    )


def _later(stack: Stack, start: int) -> None:
    """The server's clock moves past the request window."""
    late = start + stack.settings.request_window_s + 60
    stack.services.engine.ctx.clock = lambda: float(late)


async def test_a_late_retry_of_the_same_event_and_key_gets_the_first_answer(stack: Stack) -> None:
    keys = NostrKeys.generate()
    start = int(time.time())
    event = _create(keys, "Once", start)
    first = await _post(stack, event, "late-key")
    assert first.status_code == 201

    _later(stack, start)
    again = await _post(stack, event, "late-key")

    assert again.status_code == 201, again.json()
    assert again.json() == first.json()


async def test_a_late_event_is_still_stale_unless_it_is_the_one_first_answered(
    stack: Stack,
) -> None:
    keys = NostrKeys.generate()
    start = int(time.time())
    event = _create(keys, "Once", start)
    assert (await _post(stack, event, "late-key")).status_code == 201
    other = _create(keys, "Other", start)
    stranger = _create(NostrKeys.generate(), "Once", start)

    _later(stack, start)
    for late, key in ((event, "other-key"), (other, "late-key"), (stranger, "late-key")):
        response = await _post(stack, late, key)
        assert response.status_code == 422
        assert response.json()["code"] == "stale_request"
