"""Signed content is read strictly: a number in a string, or a bool, is not an amount."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from support.stacks import Stack
from test_writes import _counts, _post, _signed

from taskhold.nostr import NostrKeys


def _create(**overrides: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "title": "Strict",
        "amount_msat": 100_000,
        "deadline_at": int(time.time()) + 600,
    }
    content.update(overrides)
    return content


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount_msat", "50000"),
        ("amount_msat", True),
        ("amount_msat", 50000.0),
        ("deadline_at", str(int(time.time()) + 600)),
        ("review_window_s", False),
        ("deposit", 1),
        ("title", 7),
    ],
    # ids without the values: a deadline from the clock would differ between xdist workers
    ids=["amount-str", "amount-bool", "amount-float", "deadline-str", "window-bool", "deposit-int",
         "title-int"],
)  # fmt: skip
async def test_loosely_typed_content_is_refused(stack: Stack, field: str, value: Any) -> None:
    event = _signed(NostrKeys.generate(), "create", _create(**{field: value}), None)

    response = await _post(stack, "/v1/tasks", event, "strict")

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_content"
    assert field in response.json()["detail"]
    assert await _counts(stack) == (0, 0)


async def test_well_typed_content_is_accepted(stack: Stack) -> None:
    event = _signed(NostrKeys.generate(), "create", _create(), None)
    response = await _post(stack, "/v1/tasks", event, "fine")
    assert response.status_code == 201, response.text
    assert json.loads(event["content"])["amount_msat"] == response.json()["amount_msat"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount_msat", 2**64), ("review_window_s", 10**400), ("deadline_at", -(2**63) - 1)],
    ids=["amount-2^64", "window-10^400", "deadline-below-int64"],
)
async def test_integers_beyond_64_bits_are_refused(stack: Stack, field: str, value: int) -> None:
    base = {k: v for k, v in _create().items() if k != field}
    content = json.dumps(base).replace('"title"', f'"{field}": {value}, "title"', 1)
    keys = NostrKeys.generate()
    event = keys.sign_event(3912, content, [["op", "create"]], int(time.time()))

    response = await _post(stack, "/v1/tasks", event, "big")

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "malformed_content"
    assert await _counts(stack) == (0, 0)


async def test_a_cursor_beyond_64_bits_is_refused(stack: Stack) -> None:
    response = await stack.http.get("/v1/tasks", params={"before": 2**70})
    assert response.status_code == 422, response.text
