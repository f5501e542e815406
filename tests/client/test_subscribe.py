"""The live-update contract on two relay implementations (nostr-sdk's LocalRelay and PyPI
``nostr-relay``), on both databases: ``TaskholdClient.subscribe`` yields every transition of a run
in ``gseq`` order, a subscriber killed mid-run resumes from its last ``gseq`` with no gap and no
repeat, the board sees every moment a task is claimable, and every filter ``docs/subscribing.md``
gives selects what it says on a real relay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from support.relays import drain, log_in_db, run_tasks, serving_relay
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import funded, read_log, submitted, tag

from taskhold.client import TaskholdClient
from taskhold.moderation import Moderator
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.follow import Transition
from taskhold.nostr.relays import RelayPool
from taskhold.nostr.verify import verify_event

DOC = Path(__file__).resolve().parents[2] / "docs" / "subscribing.md"


@pytest.fixture(params=["embedded", pytest.param("nostr-relay", marks=pytest.mark.slow)])
async def relay_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with serving_relay(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def live_stack(tmp_path: Path, database_url: str, relay_url: str) -> AsyncIterator[Stack]:
    opened = await open_stack(stack_settings(tmp_path, database_url, relays=[relay_url]))
    try:
        yield opened
    finally:
        await close_stack(opened)


@contextlib.asynccontextmanager
async def publishing(stack: Stack) -> AsyncIterator[None]:
    """The outbox publisher running in the background, as ``serve`` runs it."""
    publisher = stack.services.publisher
    assert publisher is not None

    async def loop() -> None:
        while True:
            if (await publisher.run_once()).claimed == 0:
                await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Collector:
    """Iterates a subscription in the background, keeping what it yields."""

    def __init__(self, items: AsyncGenerator[Any]) -> None:
        self.items: list[Any] = []
        self._task = asyncio.create_task(self._run(items))

    async def _run(self, items: AsyncGenerator[Any]) -> None:
        async with contextlib.aclosing(items):
            async for item in items:
                self.items.append(item)

    async def wait_for(self, done: Callable[[list[Any]], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(self.items):
            if self._task.done():
                self._task.result()
                raise AssertionError("the subscription ended")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; got {len(self.items)}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def positions(transitions: list[Transition]) -> list[tuple[int, str]]:
    return [(t.gseq, t.entry["id"]) for t in transitions]


async def reach_head(stack: Stack, *collectors: Collector) -> list[tuple[int, str]]:
    expected = await log_in_db(stack)
    head = expected[-1][0]
    for collector in collectors:
        await collector.wait_for(lambda items: bool(items) and items[-1].gseq >= head)
    return expected


async def claimed_released_then_paid(
    stack: Stack, employer: TaskholdClient, leaver: TaskholdClient, worker: TaskholdClient
) -> str:
    """A task a first worker claims and gives back, then a second one completes."""
    task = await funded(stack, employer)
    task_id = task["task_id"]
    await leaver.claim(task_id)
    await leaver.unclaim(task_id)
    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
    await employer.approve(task_id)
    await stack.settle_engine()
    assert (await employer.get_task(task_id))["state"] == "PAID"
    return str(task_id)


async def test_a_subscriber_sees_every_transition_of_a_run_in_order(live_stack: Stack) -> None:
    stack = live_stack
    employer, leaver, worker = stack.client(), stack.client(), stack.client()
    async with publishing(stack):
        whole = Collector(stack.client().subscribe())
        mine = Collector(stack.client().subscribe(participant=leaver.pubkey_hex))
        await run_tasks(stack, paid=1, refunded=1)
        task_id = await claimed_released_then_paid(stack, employer, leaver, worker)
        one = Collector(stack.client().subscribe(task_id=task_id))
        expected = await reach_head(stack, whole)
        entries = await read_log(stack)
        of_task = [
            (int(tag(e, "gseq") or -1), e["id"]) for e in entries if tag(e, "task") == task_id
        ]
        await one.wait_for(lambda items: positions(items) == of_task)
        await mine.wait_for(lambda items: len(items) >= 2)
        for collector in (whole, mine, one):
            await collector.stop()
    assert positions(whole.items) == expected
    assert [t.seq for t in one.items] == list(range(1, len(of_task) + 1))
    # The worker who gave the task back sees their claim and its release, nothing after.
    assert [t.op for t in mine.items] == ["TaskClaimed", "ClaimReleased"]


async def test_a_subscriber_killed_mid_run_resumes_with_no_gap(live_stack: Stack) -> None:
    stack = live_stack
    watcher = stack.client()
    async with publishing(stack):
        first = Collector(watcher.subscribe())
        await run_tasks(stack, paid=1, refunded=0)
        await reach_head(stack, first)
        await first.stop()
        last = first.items[-1].gseq
        await run_tasks(stack, paid=1, refunded=1)  # while nobody listens
        second = Collector(watcher.subscribe(after_gseq=last))
        await run_tasks(stack, paid=1, refunded=0)  # while it catches up and streams
        expected = await reach_head(stack, second)
        await second.stop()
    assert second.items[0].gseq == last + 1
    assert positions(first.items) + positions(second.items) == expected


async def test_a_task_subscriber_resumes_from_its_last_gseq(live_stack: Stack) -> None:
    stack = live_stack
    employer, worker = stack.client(), stack.client()
    async with publishing(stack):
        task = await funded(stack, employer)
        task_id = task["task_id"]
        first = Collector(stack.client().subscribe(task_id=task_id))
        await first.wait_for(lambda items: [t.op for t in items][-1:] == ["FundingAccepted"])
        await first.stop()
        await worker.claim(task_id)
        invoice = await stack.world.worker.create_invoice(
            task["payout_msat"], expiry_seconds=86_400
        )
        await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
        second = Collector(
            stack.client().subscribe(task_id=task_id, after_gseq=first.items[-1].gseq)
        )
        await employer.approve(task_id)
        await stack.settle_engine()
        await second.wait_for(lambda items: [t.op for t in items][-1:] == ["ReleaseCompleted"])
        await second.stop()
    seqs = [t.seq for t in first.items + second.items]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [t.op for t in second.items][:2] == ["TaskClaimed", "ProofSubmitted"]


def listing_states(listings: list[dict[str, Any]], task_id: str) -> list[str]:
    """The ``s`` tag of every version of one task's listing, in the order they were signed."""
    versions = sorted(
        (e for e in listings if tag(e, "d") == task_id), key=lambda e: e["created_at"]
    )
    return [tag(e, "s") or "" for e in versions]


async def test_the_board_sees_a_task_the_moment_it_becomes_claimable(live_stack: Stack) -> None:
    """Funded, claimed and given back before the publisher ran once: the listings showing the
    task open still reach the relay and a board subscriber, not only the last one."""
    stack = live_stack
    employer, worker = stack.client(), stack.client()
    operator = stack.services.signer.get_public_key()
    pool = RelayPool()
    await pool.connect(stack.settings.relays)
    board = Collector(pool.stream(board_filter(operator)))
    try:
        task = await funded(stack, employer)
        task_id = task["task_id"]
        await worker.claim(task_id)
        await worker.unclaim(task_id)
        await stack.client().claim(task_id)
        async with publishing(stack):
            await board.wait_for(lambda items: listing_states(items, task_id)[-1:] == ["closed"])
    finally:
        await board.stop()
        await pool.close()
    assert all(verify_event(event) for event in board.items)
    # Six versions were queued (created, funding requested, funded, claimed, released, claimed
    # again); the closed ones that a newer one replaced are rightly never sent.
    assert listing_states(board.items, task_id) == ["open", "open", "closed"]


def board_filter(operator: str) -> dict[str, Any]:
    return fill(doc_filters()["board"], operator=operator)


def doc_filters() -> dict[str, str]:
    """The JSON blocks of docs/subscribing.md, by the name after ``json``."""
    return dict(re.findall(r"```json (\w+)\n(.*?)\n```", DOC.read_text(), re.S))


def fill(template: str, **values: Any) -> dict[str, Any]:
    text = template
    for name, value in values.items():
        text = text.replace(f'"<{name}>"', json.dumps(value)).replace(f"<{name}>", str(value))
    parsed: dict[str, Any] = json.loads(text)
    return parsed


async def test_every_filter_in_the_doc_selects_what_it_says(live_stack: Stack) -> None:
    stack = live_stack
    filters = doc_filters()
    assert set(filters) == {
        "task", "participant", "board_open", "board", "log_resume", "log_live", "moderation"
    }  # fmt: skip
    employer, worker = stack.client(), stack.client()
    operator = stack.services.signer.get_public_key()
    async with publishing(stack):
        paid = await submitted(stack, employer, worker)
        await employer.approve(paid["task_id"])
        await stack.settle_engine()
        open_task = await funded(stack, employer)
        delisted = await funded(stack, employer)
        assert stack.services.audit is not None
        await Moderator(
            stack.services.store,
            stack.services.signer,
            stack.services.audit,
            kind=stack.settings.kind_checkpoint,
        ).delist(delisted["task_id"], "scam", actor="admin:test")
        await reach_head(stack, Collector(stack.client().subscribe()))
        assert stack.services.publisher is not None
        await drain(stack.services.publisher)  # the delisting adds no log entry to wait for
    entries = await read_log(stack)
    pool = RelayPool()
    await pool.connect(stack.settings.relays)
    try:
        task = await pool.fetch(fill(filters["task"], operator=operator, task_id=paid["task_id"]))
        mine = await pool.fetch(
            fill(filters["participant"], operator=operator, pubkey=worker.pubkey_hex)
        )
        board_open = await pool.fetch(fill(filters["board_open"], operator=operator))
        board = await pool.fetch(fill(filters["board"], operator=operator))
        moderation = await pool.fetch(fill(filters["moderation"], operator=operator))
        g = 2
        resumed = await pool.fetch(
            fill(
                filters["log_resume"],
                operator=operator,
                **{"g+1": str(g + 1), "g+2": str(g + 2), "g+3": str(g + 3)},
            )
        )
        since = entries[g]["created_at"]
        live = await pool.fetch(
            fill(filters["log_live"], operator=operator, **{"created_at of entry g": since})
        )
    finally:
        await pool.close()

    def ids(events: list[dict[str, Any]]) -> set[str]:
        return {event["id"] for event in events}

    assert ids(task) == {e["id"] for e in entries if tag(e, "task") == paid["task_id"]}
    worker_entries = {e["id"] for e in entries if ["p", worker.pubkey_hex] in e["tags"]}
    assert ids(mine) == worker_entries and len(worker_entries) >= 4
    assert {tag(e, "d") for e in board_open} == {open_task["task_id"]}  # not the delisted one
    assert {tag(e, "d") for e in board} == {
        paid["task_id"], open_task["task_id"], delisted["task_id"]
    }  # fmt: skip
    newest = {tag(e, "d"): e for e in sorted(board, key=lambda e: e["created_at"])}
    assert tag(newest[delisted["task_id"]], "s") == "delisted"
    assert [
        t["task_id"] for e in moderation for t in json.loads(e["content"])["delisted_tasks"]
    ] == [delisted["task_id"]]
    assert ids(resumed) == {entries[n]["id"] for n in (g + 1, g + 2, g + 3)}
    assert ids(entries[g + 1 :]) <= ids(live)


async def test_a_subscription_outlives_a_relay_restart(tmp_path: Path, database_url: str) -> None:
    """The relay goes down mid-run and comes back on its port: the same subscription carries
    on, and what was published meanwhile arrives in order, with no gap."""
    relay = EmbeddedRelay(tmp_path / "relay-data")
    url = await relay.start()
    stack = await open_stack(stack_settings(tmp_path, database_url, relays=[url]))
    try:
        async with publishing(stack):
            whole = Collector(stack.client().subscribe())
            await run_tasks(stack, paid=1, refunded=0)
            await reach_head(stack, whole)
            await relay.stop()
            await run_tasks(stack, paid=1, refunded=1)
            assert await relay.start() == url
            expected = await reach_head(stack, whole)
            await whole.stop()
    finally:
        await close_stack(stack)
        await relay.stop()
    assert positions(whole.items) == expected
