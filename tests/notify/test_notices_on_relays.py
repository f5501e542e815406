"""NIP-17 notifications as relays serve them, on the embedded relay and on PyPI ``nostr-relay``:
each participant finds their messages by ``#p`` and opens them with their key; nobody else
(the other party, an arbiter, a stranger) opens any of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.notices import gift_wraps, opened_by
from support.relays import drain, serving_relay
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import submitted

from taskhold.nostr import NostrKeys

pytestmark = pytest.mark.slow


@pytest.fixture(params=["embedded", "nostr-relay"])
async def relay_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with serving_relay(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def relay_stack(tmp_path: Path, database_url: str, relay_url: str) -> AsyncIterator[Stack]:
    opened = await open_stack(stack_settings(tmp_path, database_url, relays=[relay_url]))
    try:
        yield opened
    finally:
        await close_stack(opened)


async def test_each_notification_on_the_relay_opens_only_with_its_addressee_key(
    relay_stack: Stack, keys: dict[str, NostrKeys]
) -> None:
    employer, worker = relay_stack.client(keys["employer"]), relay_stack.client(keys["worker"])
    task = await submitted(relay_stack, employer, worker)
    await employer.approve(task["task_id"])
    await relay_stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    publisher, pool = relay_stack.services.publisher, relay_stack.services.relay_pool
    assert publisher is not None and pool is not None
    await drain(publisher)

    kind = relay_stack.settings.kind_gift_wrap
    queued = {wrap["id"] for wrap in await gift_wraps(relay_stack)}
    expected = {"employer": {"fund", "approve"}, "worker": {"submit_proof"}}
    served = set()
    for name, actions in expected.items():
        wraps = await pool.fetch({"kinds": [kind], "#p": [keys[name].pubkey_hex]})
        served |= {wrap["id"] for wrap in wraps}
        messages = opened_by(keys[name], wraps)
        assert len(messages) == len(wraps)
        assert {m.tag("action") for m in messages} == actions
        assert {m.tag("task") for m in messages} == {task["task_id"]}
        assert {m.sender for m in messages} == {relay_stack.services.signer.get_public_key()}
        for other, other_keys in keys.items():
            if other != name:
                assert opened_by(other_keys, wraps) == []
        assert opened_by(NostrKeys.generate(), wraps) == []
    assert served == queued
