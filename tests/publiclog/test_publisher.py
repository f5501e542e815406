"""The outbox publisher against the embedded relay, on both databases: the whole log arrives in
``gseq`` order, a relay that was down gets everything once back, a restarted publisher resumes, a
relay that refuses is retried with back-off, and two publishers can share one outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nostr_sdk import LocalRelayBuilder, RateLimit
from support.relays import (
    drain,
    fetch_whole_log,
    gseq_of,
    log_in_db,
    outbox_rows,
    run_tasks,
    wait_connected,
)
from support.stacks import Stack, close_stack, open_stack, stack_settings

from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.relays import NOT_CONNECTED, RelayPool
from taskhold.publiclog.publisher import OutboxPublisher

pytestmark = pytest.mark.slow


@pytest.fixture
async def relay_stack(
    tmp_path: Path, database_url: str, relay: EmbeddedRelay
) -> AsyncIterator[Stack]:
    opened = await open_stack(stack_settings(tmp_path, database_url, relays=[relay.url]))
    try:
        yield opened
    finally:
        await close_stack(opened)


def publisher_of(stack: Stack) -> OutboxPublisher:
    assert stack.services.publisher is not None
    return stack.services.publisher


def pool_of(stack: Stack) -> RelayPool:
    assert stack.services.relay_pool is not None
    return stack.services.relay_pool


async def test_full_runs_reach_the_relay_in_gseq_order(relay_stack: Stack) -> None:
    await run_tasks(relay_stack, paid=2, refunded=1)
    await drain(publisher_of(relay_stack))

    expected = await log_in_db(relay_stack)
    assert [gseq for gseq, _ in expected] == list(range(len(expected)))
    fetched = await fetch_whole_log(pool_of(relay_stack), relay_stack, len(expected))
    assert [(gseq_of(event), event["id"]) for event in fetched] == expected
    rows = await outbox_rows(relay_stack)
    assert all(row.done for row in rows)
    assert all(row.last_error is None for row in rows if row.kind != 30402)

    operator = relay_stack.services.signer.get_public_key()
    listings = await pool_of(relay_stack).fetch({"authors": [operator], "kinds": [30402]})
    assert len(listings) == 3
    assert {tag[1] for event in listings for tag in event["tags"] if tag[0] == "status"} == {
        "paid",
        "refunded",
    }


async def test_relay_down_during_a_run_leaves_no_gap(
    relay_stack: Stack, relay: EmbeddedRelay
) -> None:
    publisher, pool = publisher_of(relay_stack), pool_of(relay_stack)
    await run_tasks(relay_stack, paid=1, refunded=0)
    await drain(publisher)
    before = len(await log_in_db(relay_stack))

    url = relay.url
    await relay.stop()
    await run_tasks(relay_stack, paid=1, refunded=1)
    round_ = await publisher.run_once()
    assert round_.claimed > 0 and round_.done == 0
    stuck = [row for row in await outbox_rows(relay_stack) if not row.done]
    assert stuck and all(row.attempts == 1 for row in stuck)
    assert all(row.last_error == f"{url}: {NOT_CONNECTED}" for row in stuck), [
        r.last_error for r in stuck
    ]

    assert await relay.start() == url  # same port, same LMDB
    await wait_connected(pool, url)
    await drain(publisher)

    expected = await log_in_db(relay_stack)
    assert len(expected) > before
    fetched = await fetch_whole_log(pool, relay_stack, len(expected))
    assert [(gseq_of(event), event["id"]) for event in fetched] == expected


async def test_a_new_publisher_over_the_same_database_resumes(
    tmp_path: Path, database_url: str, relay: EmbeddedRelay
) -> None:
    settings = stack_settings(tmp_path, database_url, relays=[relay.url])
    first = await open_stack(settings)
    await run_tasks(first, paid=1, refunded=1)
    partial = OutboxPublisher(first.services.store, pool_of(first), [relay.url], batch_size=3)
    assert (await partial.run_once()).done == 3
    left = await partial.pending()
    assert left > 0
    await close_stack(first)

    restarted = await open_stack(settings, world=first.world)
    try:
        await drain(publisher_of(restarted))
        expected = await log_in_db(restarted)
        fetched = await fetch_whole_log(pool_of(restarted), restarted, len(expected))
        assert [(gseq_of(event), event["id"]) for event in fetched] == expected
    finally:
        await close_stack(restarted)


async def test_a_refusing_relay_is_retried_with_backoff_and_the_error_recorded(
    relay_stack: Stack, relay: EmbeddedRelay
) -> None:
    # A relay that demands proof of work refuses every entry: "pow: required a difficulty ...".
    # Its rate limit is lifted so that only the proof of work refuses (a run's gift wraps would
    # take the default 60 events a minute over the nine rounds).
    refusing = (
        LocalRelayBuilder()
        .addr("127.0.0.1")
        .min_pow(30)
        .rate_limit(RateLimit(max_reqs=10_000, notes_per_minute=1_000_000))
        .build()
    )
    await refusing.run()
    refusing_url = str(await refusing.url())
    pool = RelayPool(reconnect_interval_s=0.5)
    try:
        await pool.connect([relay.url, refusing_url])
        now = [time.time()]
        publisher = OutboxPublisher(
            relay_stack.services.store, pool, [relay.url, refusing_url], lambda: now[0]
        )
        await run_tasks(relay_stack, paid=0, refunded=1)

        delays = []
        for _ in range(9):
            round_ = await publisher.run_once()
            assert round_.claimed > 0 and round_.done == 0
            rows = [row for row in await outbox_rows(relay_stack) if not row.done]
            head = rows[0]
            assert head.acked_relays == [relay.url]
            assert head.last_error is not None
            assert head.last_error.startswith(f"{refusing_url}: pow:")
            delays.append(head.next_attempt_at - int(now[0]))
            assert (await publisher.run_once()).claimed == 0  # not due yet
            now[0] += delays[-1]
        assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
        assert head.attempts == 9
    finally:
        await pool.close()
        refusing.shutdown()
        await asyncio.sleep(0.2)


async def test_two_publishers_share_one_outbox(relay_stack: Stack, relay: EmbeddedRelay) -> None:
    await run_tasks(relay_stack, paid=2, refunded=1)
    pool = pool_of(relay_stack)
    publishers = [
        OutboxPublisher(relay_stack.services.store, pool, [relay.url], batch_size=4)
        for _ in range(2)
    ]
    deadline = time.monotonic() + 60
    while await publishers[0].pending() > 0:
        assert time.monotonic() < deadline, [r.last_error for r in await outbox_rows(relay_stack)]
        rounds = await asyncio.gather(*(p.run_once() for p in publishers))
        if sum(r.claimed for r in rounds) == 0:
            await asyncio.sleep(0.2)  # a row that failed in the race waits out its back-off
    expected = await log_in_db(relay_stack)
    fetched = await fetch_whole_log(pool, relay_stack, len(expected))
    assert [(gseq_of(event), event["id"]) for event in fetched] == expected


async def test_the_background_loop_publishes_while_tasks_run(relay_stack: Stack) -> None:
    publisher = publisher_of(relay_stack)
    await publisher.start()
    try:
        await run_tasks(relay_stack, paid=1, refunded=0)
        ids = [event_id for _, event_id in await log_in_db(relay_stack)]
        await publisher.wait_until_published(ids, timeout_s=30)
    finally:
        await publisher.stop()
    assert await publisher.pending(ids) == 0
