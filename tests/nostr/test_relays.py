"""RelayPool and EmbeddedRelay: acks, a dead relay failing fast, reading the log by ``#o`` past
the relay's 500-events-per-REQ cap, equivocations kept, and the relay's LMDB surviving a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskhold.nostr import KIND_LOG_ENTRY, NostrKeys
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.relays import NOT_CONNECTED, RelayError, RelayPool
from taskhold.server import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
async def pool(relay: EmbeddedRelay) -> AsyncIterator[RelayPool]:
    connected = RelayPool()
    await connected.connect([relay.url])
    try:
        yield connected
    finally:
        await connected.close()


def entry(keys: NostrKeys, gseq: int, note: str = "") -> dict[str, Any]:
    tags = [["gseq", str(gseq)], ["o", str(gseq)]]
    return keys.sign_event(KIND_LOG_ENTRY, f"entry {gseq}{note}", tags, int(time.time()))


async def publish_all(pool: RelayPool, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 50):
        answers = await asyncio.gather(*(pool.publish(e) for e in events[start : start + 50]))
        assert all(answer is None for result in answers for answer in result.values()), answers


async def test_publish_is_acked_and_a_duplicate_counts_as_acked(
    pool: RelayPool, relay: EmbeddedRelay
) -> None:
    event = entry(NostrKeys.generate(), 0)
    assert await pool.publish(event) == {relay.url: None}
    assert await pool.publish(event) == {relay.url: None}
    assert await pool.fetch({"ids": [event["id"]]}) == [event]


async def test_a_relay_that_is_down_fails_at_once_without_slowing_the_others(
    relay: EmbeddedRelay,
) -> None:
    down = f"ws://127.0.0.1:{free_port()}"
    pool = RelayPool(connect_timeout_s=1.0, ok_timeout_s=30.0)
    try:
        await pool.connect([relay.url, down])
        started = time.monotonic()
        answers = await pool.publish(entry(NostrKeys.generate(), 0))
        assert time.monotonic() - started < 10.0  # nowhere near the 30 s OK timeout
        assert answers == {relay.url: None, down: NOT_CONNECTED}
    finally:
        await pool.close()


async def test_fetch_log_pages_past_the_per_req_cap_and_keeps_equivocations(
    pool: RelayPool,
) -> None:
    operator, stranger = NostrKeys.generate(), NostrKeys.generate()
    events = [entry(operator, gseq) for gseq in range(620) if gseq != 300]
    forged = entry(operator, 5, " (a second history)")
    await publish_all(pool, [*events, forged, entry(stranger, 7)])

    log = await pool.fetch_log(operator.pubkey_hex, KIND_LOG_ENTRY, range(625))

    assert len(log) == 620  # 619 entries, gseq 300 missing, plus the second gseq 5
    gseqs = [int(next(t[1] for t in e["tags"] if t[0] == "o")) for e in log]
    assert gseqs == sorted(gseqs)
    assert gseqs.count(5) == 2 and 300 not in gseqs
    assert {e["id"] for e in log} == {e["id"] for e in [*events, forged]}


async def test_a_batch_that_hits_the_cap_is_split(relay: EmbeddedRelay) -> None:
    operator = NostrKeys.generate()
    pool = RelayPool(batch_size=499)
    try:
        await pool.connect([relay.url])
        # Two entries for each of 300 numbers: one batch would match 600 events, over the cap.
        events = [entry(operator, g, note) for g in range(300) for note in ("", " again")]
        await publish_all(pool, events)
        log = await pool.fetch_log(operator.pubkey_hex, KIND_LOG_ENTRY, range(300))
        assert len(log) == 600
    finally:
        await pool.close()


async def test_the_embedded_relay_keeps_its_events_across_a_restart(
    pool: RelayPool, relay: EmbeddedRelay
) -> None:
    operator = NostrKeys.generate()
    event = entry(operator, 0)
    await pool.publish(event)
    url = relay.url
    await relay.stop()
    with pytest.raises(RelayError):
        await pool.fetch_log(operator.pubkey_hex, KIND_LOG_ENTRY, [0])
    assert await relay.start() == url
    deadline = time.monotonic() + 20
    while not await pool.is_connected(url):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert await pool.fetch_log(operator.pubkey_hex, KIND_LOG_ENTRY, [0]) == [event]
