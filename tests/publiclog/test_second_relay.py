"""The public log on a second relay implementation: PyPI ``nostr-relay``, run by the test as a
separate process. The outbox gets every entry of full task runs there in ``gseq`` order, and a
relay that goes down mid-run and comes back (same port, same SQLite) ends up with no gap."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.relays import (
    NostrRelayProcess,
    drain,
    fetch_whole_log,
    gseq_of,
    log_in_db,
    outbox_rows,
    run_tasks,
    wait_connected,
    wait_disconnected,
)
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import created

from taskhold.nostr.relays import NOT_CONNECTED, RelayPool

pytestmark = pytest.mark.slow


@pytest.fixture
def nostr_relay(tmp_path: Path) -> Iterator[NostrRelayProcess]:
    process = NostrRelayProcess(tmp_path / "nostr-relay")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def relay_stack(
    tmp_path: Path, database_url: str, nostr_relay: NostrRelayProcess
) -> AsyncIterator[Stack]:
    opened = await open_stack(stack_settings(tmp_path, database_url, relays=[nostr_relay.url]))
    try:
        yield opened
    finally:
        await close_stack(opened)


def pool_of(stack: Stack) -> RelayPool:
    assert stack.services.relay_pool is not None
    return stack.services.relay_pool


async def test_full_runs_reach_nostr_relay_in_gseq_order(relay_stack: Stack) -> None:
    assert relay_stack.services.publisher is not None
    await run_tasks(relay_stack, paid=2, refunded=1)
    # The entry embeds the signed create request whole: over nostr-relay's default 4096 chars.
    await created(relay_stack, relay_stack.client(), description="Five, seven, five. " * 400)
    await drain(relay_stack.services.publisher)

    expected = await log_in_db(relay_stack)
    fetched = await fetch_whole_log(pool_of(relay_stack), relay_stack, len(expected))
    assert [(gseq_of(event), event["id"]) for event in fetched] == expected
    assert len(fetched[-1]["content"]) > 4096


async def test_nostr_relay_down_during_a_run_leaves_no_gap(
    relay_stack: Stack, nostr_relay: NostrRelayProcess
) -> None:
    publisher, pool = relay_stack.services.publisher, pool_of(relay_stack)
    assert publisher is not None
    await run_tasks(relay_stack, paid=1, refunded=0)
    await drain(publisher)

    nostr_relay.stop()
    await wait_disconnected(pool, nostr_relay.url)
    await run_tasks(relay_stack, paid=1, refunded=1)
    await publisher.run_once()
    stuck = [row for row in await outbox_rows(relay_stack) if not row.done]
    assert stuck and all(row.last_error == f"{nostr_relay.url}: {NOT_CONNECTED}" for row in stuck)

    nostr_relay.start()  # same port, same SQLite file
    await wait_connected(pool, nostr_relay.url)
    await drain(publisher)

    expected = await log_in_db(relay_stack)
    fetched = await fetch_whole_log(pool, relay_stack, len(expected))
    assert [(gseq_of(event), event["id"]) for event in fetched] == expected
