"""The log follower's checks, against a scripted relay: it fills a jump in ``gseq`` before
yielding, ignores what does not verify or is not the operator's, drops repeats, and raises
``LogGap`` where a chain needs an entry no relay has."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
import structlog
from nostr_sdk import Event, Filter

from taskhold.nostr import NostrKeys, follow
from taskhold.nostr.follow import LogGap, Selection, Transition, follow_log

OPERATOR = NostrKeys.generate()
EMPLOYER = NostrKeys.generate().pubkey_hex


class ScriptedRelay:
    """What a RelayPool answers: ``stored`` for fetches, ``live`` pushed to every stream."""

    def __init__(self, stored: list[dict[str, Any]]) -> None:
        self.stored = stored
        self.live: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def fetch(self, wanted: dict[str, Any]) -> list[dict[str, Any]]:
        sdk_filter = Filter.from_json(json.dumps(wanted))
        return [e for e in self.stored if sdk_filter.match_event(Event.from_json(json.dumps(e)))]

    async def stream(self, wanted: dict[str, Any]) -> AsyncGenerator[dict[str, Any]]:
        while True:
            yield await self.live.get()


def log_of(tasks: list[str], *, signer: NostrKeys = OPERATOR) -> list[dict[str, Any]]:
    """Signed entries, one per item of ``tasks`` (a task id each), chained as the writer does."""
    entries: list[dict[str, Any]] = []
    last: dict[str, tuple[int, str]] = {}
    for gseq, task_id in enumerate(tasks):
        seq, prev = last.get(task_id, (0, None))
        tags = [
            ["a", f"30402:{signer.pubkey_hex}:{task_id}"],
            ["task", task_id],
            ["op", "TaskCreated" if seq == 0 else "Step"],
            ["seq", str(seq + 1)],
            ["gseq", str(gseq)],
            ["o", str(gseq)],
            ["p", EMPLOYER],
        ]
        if prev is not None:
            tags.append(["prev", prev])
        if entries:
            tags.append(["gprev", entries[-1]["id"]])
        content = json.dumps({"v": 1, "event": {"type": "Step"}, "request": None})
        entry = signer.sign_event(3910, content, tags, 1_900_000_000 + gseq)
        entries.append(entry)
        last[task_id] = (seq + 1, entry["id"])
    return entries


def selection(**only: str) -> Selection:
    return Selection(operator=OPERATOR.pubkey_hex, log_kind=3910, listing_kind=30402, **only)


async def take(
    relay: ScriptedRelay,
    chosen: Selection,
    count: int,
    *,
    after_gseq: int = -1,
    patience_s: float = 0.5,
) -> list[Transition]:
    pool: Any = relay
    follower = follow_log(pool, chosen, after_gseq=after_gseq, gap_patience_s=patience_s)
    taken: list[Transition] = []
    try:
        async with asyncio.timeout(10):
            async for transition in follower:
                taken.append(transition)
                if len(taken) == count:
                    break
    finally:
        await follower.aclose()
    return taken


async def test_a_jump_in_gseq_is_filled_before_the_entry_is_yielded() -> None:
    entries = log_of(["t1", "t1", "t2", "t1", "t2"])
    relay = ScriptedRelay(entries[:2])
    follower = asyncio.create_task(take(relay, selection(), 5))
    await asyncio.sleep(0.2)
    relay.stored = entries  # 2 and 3 reached the relay while the live message got lost
    relay.live.put_nowait(entries[4])
    taken = await follower
    assert [t.gseq for t in taken] == [0, 1, 2, 3, 4]
    assert [t.entry["id"] for t in taken] == [e["id"] for e in entries]


@pytest.mark.parametrize("live", [False, True], ids=["catching-up", "live"])
async def test_an_entry_that_reaches_the_relay_late_is_waited_for(live: bool) -> None:
    """After an outage the operator's backlog can reach a relay out of order: gseq 3 is there
    before gseq 2. The follower asks again until 2 arrives, then yields both in order."""
    entries = log_of(["t1", "t2", "t1", "t1"])
    relay = ScriptedRelay(entries[:2] if live else [*entries[:2], entries[3]])
    for chosen in (selection(), selection(task_id="t1")):
        relay.stored = entries[:2] if live else [*entries[:2], entries[3]]
        wanted = 4 if chosen.whole_log else 3
        follower = asyncio.create_task(take(relay, chosen, wanted, patience_s=10))
        await asyncio.sleep(0.2)
        if live:
            relay.stored = [*entries[:2], entries[3]]
            relay.live.put_nowait(entries[3])
        await asyncio.sleep(1.0)
        assert not follower.done()
        relay.stored = entries
        taken = await follower
        expected = [e for e in entries if chosen.matches(e)]
        assert [t.entry["id"] for t in taken] == [e["id"] for e in expected]


async def test_forgeries_foreign_entries_and_repeats_are_ignored() -> None:
    entries = log_of(["t1", "t1", "t1"])
    forged = {**entries[2], "sig": entries[1]["sig"]}
    foreign = log_of(["t1", "t1", "t1"], signer=NostrKeys.generate())[2]
    relay = ScriptedRelay(entries[:2])
    follower = asyncio.create_task(take(relay, selection(task_id="t1"), 2, after_gseq=0))
    await asyncio.sleep(0.2)
    for event in (forged, foreign, entries[1], entries[2]):
        relay.live.put_nowait(event)
    taken = await follower
    assert [t.entry["id"] for t in taken] == [entries[1]["id"], entries[2]["id"]]


async def test_an_entry_no_relay_has_is_a_gap() -> None:
    entries = log_of(["t1", "t2", "t1", "t1"])
    relay = ScriptedRelay([entries[0], entries[1], entries[3]])
    for chosen in (selection(), selection(task_id="t1")):
        with pytest.raises(LogGap, match="seq 2"):
            await take(relay, chosen, 4)
    # A task's chain: seq 3 arrives live, seq 2 never reached the relay.
    relay = ScriptedRelay(entries[:2])
    follower = asyncio.create_task(take(relay, selection(task_id="t1"), 3))
    await asyncio.sleep(0.2)
    relay.stored = [*entries[:2], entries[3]]
    relay.live.put_nowait(entries[3])
    with pytest.raises(LogGap, match="no relay has seq 2"):
        await follower


async def test_a_task_follower_resumed_finds_a_hole_right_after_its_resume_point() -> None:
    """Resumed after seq 1 (gseq 0): seq 2 never reached the relay, seq 3 did. The chain goes
    on from the entry handed out last, so seq 3 is a gap, not a new start."""
    entries = log_of(["t1", "t1", "t1"])
    relay = ScriptedRelay([entries[0], entries[2]])
    with pytest.raises(LogGap, match="no relay has seq 2"):
        await take(relay, selection(task_id="t1"), 1, after_gseq=0)
    relay.stored = entries
    taken = await take(relay, selection(task_id="t1"), 2, after_gseq=0)
    assert [t.seq for t in taken] == [2, 3]


async def test_a_caller_slower_than_the_relays_is_held_in_bounded_memory_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twenty entries arrive live while the caller holds the first: past ``QUEUE_MAX`` the
    follower drops what it queued and reads it back by ``#o``, in order, with no gap."""
    monkeypatch.setattr(follow, "QUEUE_MAX", 3)
    entries = log_of(["t1", "t2"] * 10)
    relay = ScriptedRelay(entries[:1])
    pool: Any = relay
    follower = follow_log(pool, selection(), gap_patience_s=0.5)
    with structlog.testing.capture_logs() as logs:
        taken = [await anext(follower)]
        relay.stored = entries
        for entry in entries[1:]:
            relay.live.put_nowait(entry)
        await asyncio.sleep(0.2)  # the listener queues them; the caller does nothing
        async with asyncio.timeout(10):
            taken += [await anext(follower) for _ in entries[1:]]
    await follower.aclose()
    assert [t.entry["id"] for t in taken] == [e["id"] for e in entries]
    assert any(entry["event"] == "follow_fell_behind" for entry in logs)


async def test_a_participant_sees_only_entries_naming_them() -> None:
    entries = log_of(["t1", "t2"])
    worker = NostrKeys.generate().pubkey_hex
    relay = ScriptedRelay(entries)
    follower = asyncio.create_task(take(relay, selection(participant=worker), 1))
    await asyncio.sleep(0.2)
    assert not follower.done()
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    taken = await take(relay, selection(participant=EMPLOYER), 2)
    assert [t.task_id for t in taken] == ["t1", "t2"]
