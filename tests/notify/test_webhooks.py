"""Signed webhooks: every log entry reaches each registered receiver once, in order, even one
that was down for a while; a tampered delivery fails the check; a slow or redirecting
receiver costs only its own deliveries and never makes taskhold call another URL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update
from support.relays import log_in_db, run_tasks
from support.stacks import Stack
from support.task_flows import created
from support.webhook_receiver import WebhookReceiver
from typer.testing import CliRunner

from taskhold.cli import cli
from taskhold.client import TaskholdClient, verify_webhook
from taskhold.escrow import EscrowEngine
from taskhold.nostr import NostrKeys
from taskhold.nostr.webhook_delivery import verify_delivery
from taskhold.notify import WebhookDeliverer
from taskhold.notify.webhooks import add_webhook, check_webhook_url, list_webhooks
from taskhold.server import free_port, running_server
from taskhold.store.models import WebhookRow


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receivers() -> Iterator[list[WebhookReceiver]]:
    made: list[WebhookReceiver] = []
    yield made
    for receiver in made:
        receiver.stop()


def _deliverer(stack: Stack, clock: Clock, **options: Any) -> WebhookDeliverer:
    return WebhookDeliverer(
        stack.services.store,
        stack.services.signer,
        kind=stack.settings.kind_webhook_delivery,
        clock=clock,
        **options,
    )


async def _until_idle(deliverer: WebhookDeliverer, clock: Clock) -> None:
    for _ in range(50):
        clock.now += 1
        rounds = await deliverer.run_once()
        if all(r.delivered == 0 and r.error is None for r in rounds):
            return
    raise AssertionError("the webhook worker never went idle")


async def test_a_receiver_down_for_a_while_gets_every_entry_once_in_order(
    stack: Stack, receivers: list[WebhookReceiver]
) -> None:
    receiver = WebhookReceiver()
    receivers.append(receiver)
    clock = Clock()
    await add_webhook(stack.services.store, receiver.url, now=int(clock()), from_start=True)
    deliverer = _deliverer(stack, clock, batch_size=4, timeout_s=2.0)
    await run_tasks(stack, paid=1, refunded=1)

    (first,) = await deliverer.run_once()  # down: the connection is refused
    assert first.delivered == 0 and first.error is not None
    assert await deliverer.run_once() == []  # backing off: not due yet
    clock.now += 1
    (second,) = await deliverer.run_once()
    assert second.error is not None
    (hook,) = await list_webhooks(stack.services.store)
    assert hook["attempts"] == 2 and hook["delivered_gseq"] == -1
    assert hook["next_attempt_at"] == int(clock()) + 2  # 1 s, then 2 s …

    receiver.start()
    await run_tasks(stack, paid=1, refunded=0)
    clock.now += 2
    await _until_idle(deliverer, clock)
    receiver.stop()  # down again, mid-log
    await run_tasks(stack, paid=0, refunded=1)
    clock.now += 1
    (third,) = await deliverer.run_once()
    assert third.error is not None and third.delivered == 0
    receiver.start()  # same port
    clock.now += 600
    await _until_idle(deliverer, clock)

    expected = [event_id for _, event_id in await log_in_db(stack)]
    operator = stack.services.signer.get_public_key()
    delivered = [
        verify_delivery(
            body,
            operator_pubkey=operator,
            kind=stack.settings.kind_webhook_delivery,
            url=receiver.url,
        )
        for body in receiver.bodies
    ]
    assert [entry["id"] for entry in delivered] == expected
    assert [h["X-Taskhold-Delivery"] for h in receiver.headers] == expected
    (hook,) = await list_webhooks(stack.services.store)
    assert hook["delivered_gseq"] == len(expected) - 1 and hook["attempts"] == 0


async def test_a_tampered_delivery_fails_the_check(
    stack: Stack, receivers: list[WebhookReceiver]
) -> None:
    receiver = WebhookReceiver().start()
    receivers.append(receiver)
    clock = Clock()
    await add_webhook(stack.services.store, receiver.url, now=int(clock()), from_start=True)
    await run_tasks(stack, paid=0, refunded=1)
    await _deliverer(stack, clock).run_once()
    body = receiver.bodies[0]
    operator = stack.services.signer.get_public_key()
    kind = stack.settings.kind_webhook_delivery
    entry = verify_webhook(body, operator_pubkey=operator, kind=kind, url=receiver.url)
    assert entry["id"] == json.loads(body)["tags"][1][1]

    delivery = json.loads(body)
    tampered_entry = json.loads(delivery["content"])
    tampered_entry["content"] = tampered_entry["content"].replace("a", "b", 1)
    forgeries = {
        "content": {**delivery, "content": json.dumps(tampered_entry)},
        "url": {**delivery, "tags": [["u", "http://elsewhere.test/"], *delivery["tags"][1:]]},
        "signature": {**delivery, "sig": "0" * 128},
    }
    for forged in forgeries.values():
        with pytest.raises(ValueError):
            verify_webhook(
                json.dumps(forged).encode(), operator_pubkey=operator, kind=kind, url=receiver.url
            )
    flipped = bytearray(body)
    flipped[body.index(b'"content"') + 12] ^= 1
    with pytest.raises(ValueError):
        verify_webhook(bytes(flipped), operator_pubkey=operator, kind=kind, url=receiver.url)
    with pytest.raises(ValueError, match="operator"):
        verify_webhook(body, operator_pubkey=NostrKeys.generate().pubkey_hex, kind=kind)
    with pytest.raises(ValueError, match="another URL"):
        verify_webhook(body, operator_pubkey=operator, kind=kind, url=receiver.url + "x")
    # A whole delivery re-signed by another key is not the operator's.
    stranger = NostrKeys.generate()
    resigned = stranger.sign_event(kind, delivery["content"], delivery["tags"], 1)
    with pytest.raises(ValueError, match="operator"):
        verify_webhook(json.dumps(resigned), operator_pubkey=operator, kind=kind)


async def test_a_slow_receiver_holds_up_nobody_else(
    stack: Stack, receivers: list[WebhookReceiver]
) -> None:
    slow, fast = WebhookReceiver(delay_s=3.0).start(), WebhookReceiver().start()
    receivers.extend([slow, fast])
    clock = Clock()
    for receiver in (slow, fast):
        await add_webhook(stack.services.store, receiver.url, now=int(clock()), from_start=True)
    await run_tasks(stack, paid=1, refunded=0)
    deliverer = _deliverer(stack, clock, timeout_s=0.5)

    started = time.monotonic()
    rounds = {r.webhook_id: r for r in await deliverer.run_once()}
    assert time.monotonic() - started < 2.5
    hooks = {h["url"]: h for h in await list_webhooks(stack.services.store)}
    expected = [event_id for _, event_id in await log_in_db(stack)]
    assert [json.loads(b)["tags"][1][1] for b in fast.bodies] == expected
    slow_round = rounds[hooks[slow.url]["webhook_id"]]
    assert slow_round.delivered == 0 and slow_round.error == "no answer within 0.5 s"
    assert hooks[slow.url]["delivered_gseq"] == -1


async def test_a_redirect_is_not_followed(stack: Stack, receivers: list[WebhookReceiver]) -> None:
    """Only the URL the operator registered is ever called: a receiver cannot send taskhold on
    to another address (an internal service, say)."""
    elsewhere = WebhookReceiver().start()
    redirecting = WebhookReceiver(status=307).start()
    redirecting.location = elsewhere.url
    receivers.extend([elsewhere, redirecting])
    clock = Clock()
    await add_webhook(stack.services.store, redirecting.url, now=int(clock()), from_start=True)
    await run_tasks(stack, paid=0, refunded=1)
    (round_,) = await _deliverer(stack, clock).run_once()
    assert round_.error == "HTTP 307" and round_.delivered == 0
    assert len(redirecting.bodies) == 1 and elsewhere.bodies == []


async def test_a_new_webhook_starts_after_the_current_head(
    stack: Stack, receivers: list[WebhookReceiver]
) -> None:
    receiver = WebhookReceiver().start()
    receivers.append(receiver)
    await run_tasks(stack, paid=0, refunded=1)
    before = await log_in_db(stack)
    clock = Clock()
    hook = await add_webhook(stack.services.store, receiver.url, now=int(clock()), from_start=False)
    assert hook["delivered_gseq"] == before[-1][0]
    again = await add_webhook(stack.services.store, receiver.url, now=0, from_start=True)
    assert again == hook  # registering twice changes nothing
    await run_tasks(stack, paid=0, refunded=1)
    await _until_idle(_deliverer(stack, clock), clock)
    after = [event_id for _, event_id in await log_in_db(stack)][len(before) :]
    assert [json.loads(b)["tags"][1][1] for b in receiver.bodies] == after


async def test_a_removed_or_disabled_webhook_is_not_called(
    stack: Stack, receivers: list[WebhookReceiver]
) -> None:
    receiver = WebhookReceiver().start()
    receivers.append(receiver)
    clock = Clock()
    await add_webhook(stack.services.store, receiver.url, now=int(clock()), from_start=True)
    async with stack.services.store.transaction() as tx:
        await tx.session.execute(update(WebhookRow).values(enabled=False))
    await run_tasks(stack, paid=0, refunded=1)
    assert await _deliverer(stack, clock).run_once() == []
    assert receiver.bodies == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/hook",
        "file:///etc/passwd",
        "http://user:secret@example.org/hook",
        "https:///nohost",
        "http://example.org/hook#frag",
        "https://example.org/" + "x" * 2100,
        "example.org/hook",
    ],
)
def test_only_plain_http_urls_may_be_registered(url: str) -> None:
    with pytest.raises(ValueError):
        check_webhook_url(url)


def test_http_and_https_urls_are_taken_as_given() -> None:
    assert check_webhook_url(" https://example.org/hook?x=1 ") == "https://example.org/hook?x=1"
    assert check_webhook_url("http://127.0.0.1:8080/h") == "http://127.0.0.1:8080/h"


def test_the_cli_adds_lists_and_removes_webhooks(database_url: str, tmp_path: Any) -> None:
    runner = CliRunner()
    common = ["--data-dir", str(tmp_path), "--database-url", database_url]
    added = runner.invoke(cli, ["webhooks", "add", "https://example.org/h", *common, "--json"])
    assert added.exit_code == 0, added.output
    (hook,) = json.loads(added.output)
    listed = runner.invoke(cli, ["webhooks", "list", *common, "--json"])
    assert json.loads(listed.output) == [hook]
    refused = runner.invoke(cli, ["webhooks", "add", "ftp://example.org/h", *common])
    assert refused.exit_code == 2 and "http" in refused.output
    removed = runner.invoke(cli, ["webhooks", "remove", str(hook["webhook_id"]), *common])
    assert removed.exit_code == 0
    assert json.loads(runner.invoke(cli, ["webhooks", "list", *common, "--json"]).output) == []
    missing = runner.invoke(cli, ["webhooks", "remove", "99", *common])
    assert missing.exit_code == 1


async def test_a_running_server_delivers_to_webhooks_registered_while_it_runs(
    open_custom: Any, receivers: list[WebhookReceiver]
) -> None:
    """The worker runs in the server's lifespan and reads the table each round: a webhook
    added by the CLI while the server runs gets the next entries without a restart."""
    stack: Stack = await open_custom(webhook_interval_s=0.1)
    receiver = WebhookReceiver().start()
    receivers.append(receiver)
    engine = EscrowEngine(stack.services.engine.ctx)  # a served app starts its engine
    stack.services.engine = stack.services.writes.engine = engine
    async with running_server(stack.services, "127.0.0.1", free_port()) as url:
        await add_webhook(
            stack.services.store, receiver.url, now=int(time.time()), from_start=False
        )
        async with TaskholdClient(url, NostrKeys.generate()) as employer:
            task = await created(stack, employer)
        for _ in range(400):
            if receiver.bodies:
                break
            await asyncio.sleep(0.05)
    entry = verify_webhook(
        receiver.bodies[0],
        operator_pubkey=stack.services.signer.get_public_key(),
        kind=stack.settings.kind_webhook_delivery,
        url=receiver.url,
    )
    assert ["task", task["task_id"]] in entry["tags"]
