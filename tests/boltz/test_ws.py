"""Swap status over a local WebSocket server: subscription, updates, Boltz's application ping,
one resubscription after a drop; and the polling fallback over GET /swap/{id}."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from taskhold.boltz.api import BoltzApi
from taskhold.boltz.errors import (
    BoltzProtocolError,
    BoltzRefused,
    BoltzUnavailable,
    StatusTimeout,
    SwapEnded,
)
from taskhold.boltz.ws import (
    SwapUpdate,
    parse_message,
    status_updates,
    wait_for_status,
    ws_url_for,
)

Script = Callable[[ServerConnection, int], Awaitable[None]]


def update(swap_id: str, status: str, **extra: Any) -> str:
    arg = {"id": swap_id, "status": status, **extra}
    return json.dumps({"event": "update", "channel": "swap.update", "args": [arg]})


class Boltz:
    """A tiny WebSocket server: ``script(connection, n)`` plays the n-th connection (from 0);
    everything the client sends is kept in ``received``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[dict[str, Any]] = []
        self.connections = 0

    async def recv(self, ws: ServerConnection) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await ws.recv())
        self.received.append(message)
        return message

    async def handle(self, ws: ServerConnection) -> None:
        n, self.connections = self.connections, self.connections + 1
        await self.script(ws, n)


@asynccontextmanager
async def boltz_ws(script: Script) -> AsyncIterator[tuple[Boltz, str]]:
    boltz = Boltz(script)
    async with serve(boltz.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield boltz, f"ws://127.0.0.1:{port}/v2/ws"


async def take(stream: AsyncGenerator[SwapUpdate, None], count: int) -> list[SwapUpdate]:
    got = []
    async with aclosing(stream):
        async for item in stream:
            got.append(item)
            if len(got) == count:
                break
    return got


SUBSCRIBE = {"op": "subscribe", "channel": "swap.update", "args": ["s1", "s2"]}


async def test_a_dropped_connection_resubscribes_once_and_goes_on() -> None:
    boltz: Boltz

    async def script(ws: ServerConnection, n: int) -> None:
        await boltz.recv(ws)
        await ws.send(update("s1", "transaction.mempool" if n == 0 else "transaction.confirmed"))
        if n == 0:
            await ws.close()
        else:
            await ws.wait_closed()

    async with boltz_ws(script) as (boltz, url):
        got = await take(status_updates(url, ["s1", "s2"]), 2)
    assert [u.status.status for u in got] == ["transaction.mempool", "transaction.confirmed"]
    assert boltz.received == [SUBSCRIBE, SUBSCRIBE]


async def test_two_drops_in_a_row_make_it_unavailable() -> None:
    boltz: Boltz

    async def script(ws: ServerConnection, n: int) -> None:
        await boltz.recv(ws)
        await ws.close()

    async with boltz_ws(script) as (boltz, url):
        with pytest.raises(BoltzUnavailable, match="dropped"):
            await take(status_updates(url, ["s1", "s2"]), 1)
    assert boltz.received == [SUBSCRIBE, SUBSCRIBE]


async def test_subscription_and_updates_for_each_swap_and_no_other() -> None:
    boltz: Boltz

    async def script(ws: ServerConnection, n: int) -> None:
        await boltz.recv(ws)
        await ws.send(json.dumps({"event": "subscribe", "channel": "swap.update", "args": []}))
        await ws.send(update("s1", "swap.created"))
        await ws.send(update("someone-else", "transaction.claimed"))
        tx = {"id": "aa" * 32, "hex": "0200", "confirmed": False}
        await ws.send(update("s2", "transaction.mempool", transaction=tx, zeroConfRejected=True))
        await ws.wait_closed()

    async with boltz_ws(script) as (boltz, url):
        got = await take(status_updates(url, ["s1", "s2"]), 2)
    assert [(u.swap_id, u.status.status) for u in got] == [
        ("s1", "swap.created"),
        ("s2", "transaction.mempool"),
    ]
    assert got[1].status.transaction is not None and got[1].status.transaction.hex == "0200"
    assert got[1].status.zero_conf_rejected


async def test_a_silent_connection_gets_boltz_application_ping() -> None:
    boltz: Boltz

    async def script(ws: ServerConnection, n: int) -> None:
        await boltz.recv(ws)
        assert await boltz.recv(ws) == {"op": "ping"}
        await ws.send(json.dumps({"event": "pong"}))
        await ws.send(update("s1", "invoice.settled"))
        await ws.wait_closed()

    async with boltz_ws(script) as (boltz, url):
        got = await take(status_updates(url, ["s1", "s2"], ping_interval=0.05), 1)
    assert got[0].status.status == "invoice.settled"
    assert boltz.received == [SUBSCRIBE, {"op": "ping"}]


async def test_closing_the_stream_closes_the_connection() -> None:
    closed = asyncio.Event()

    async def script(ws: ServerConnection, n: int) -> None:
        await ws.recv()
        await ws.send(update("s1", "swap.created"))
        await ws.wait_closed()
        closed.set()

    async with boltz_ws(script) as (boltz, url):
        await take(status_updates(url, ["s1"]), 1)
        await asyncio.wait_for(closed.wait(), 10)
    assert boltz.connections == 1


async def test_an_unanswered_ping_counts_as_a_drop() -> None:
    boltz: Boltz

    async def script(ws: ServerConnection, n: int) -> None:
        await boltz.recv(ws)
        await ws.wait_closed()  # hears the ping, never answers

    async with boltz_ws(script) as (boltz, url):
        with pytest.raises(BoltzUnavailable):
            await take(status_updates(url, ["s1", "s2"], ping_interval=0.05), 1)
    assert boltz.connections == 2
    assert boltz.received.count(SUBSCRIBE) == 2


async def test_a_malformed_update_is_a_protocol_error() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        await ws.recv()
        await ws.send(json.dumps({"event": "update", "channel": "swap.update", "args": [{}]}))
        await ws.wait_closed()

    async with boltz_ws(script) as (_boltz, url):
        with pytest.raises(BoltzProtocolError, match="no swap id"):
            await take(status_updates(url, ["s1"]), 1)


async def test_nobody_listening_is_unavailable() -> None:
    async with boltz_ws(lambda ws, n: ws.wait_closed()) as (_boltz, url):
        pass  # the port is closed again
    with pytest.raises(BoltzUnavailable):
        await take(status_updates(url, ["s1"], open_timeout=2), 1)


@pytest.mark.parametrize(
    ("raw", "error"),
    [("not json", BoltzProtocolError), ("[]", BoltzProtocolError),
     ('{"event":"update","channel":"swap.update","args":{}}', BoltzProtocolError),
     ('{"event":"update","channel":"swap.update","args":[{"id":"s","status":3}]}',
      BoltzProtocolError),
     ('{"event":"error","error":"unknown swap"}', BoltzRefused)],
)  # fmt: skip
def test_bad_messages_raise(raw: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_message(raw)


def test_answers_that_are_not_updates_yield_nothing() -> None:
    assert parse_message('{"event":"pong"}') == []
    assert parse_message('{"event":"subscribe","channel":"swap.update","args":["s1"]}') == []


async def test_only_swap_ids_are_subscribed() -> None:
    with pytest.raises(ValueError, match="swap id"):
        await take(status_updates("ws://127.0.0.1:1/v2/ws", ["ok", "../x"]), 1)


# the polling fallback ---------------------------------------------------------------------


def polling(statuses: list[Any]) -> BoltzApi:
    answers = iter(statuses)

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/swap/s1"
        item = next(answers, statuses[-1])
        if isinstance(item, int):
            return httpx.Response(item)
        return httpx.Response(200, json={"status": item})

    return BoltzApi("http://boltz/v2", transport=httpx.MockTransport(handle))


async def test_polling_returns_the_wanted_status_through_an_outage() -> None:
    api = polling(["swap.created", 503, "transaction.mempool", "transaction.confirmed"])
    got = await wait_for_status(api, "s1", {"transaction.confirmed"}, timeout_s=30, interval=0)
    assert got.status == "transaction.confirmed"


async def test_polling_stops_at_a_final_status_it_was_not_waiting_for() -> None:
    api = polling(["swap.created", "invoice.failedToPay"])
    with pytest.raises(SwapEnded, match=r"invoice\.failedToPay"):
        await wait_for_status(api, "s1", {"transaction.claimed"}, timeout_s=30, interval=0)


async def test_polling_gives_up_after_its_time() -> None:
    api = polling(["swap.created"])
    with pytest.raises(StatusTimeout, match="did not reach"):
        await wait_for_status(api, "s1", {"transaction.claimed"}, timeout_s=0.05, interval=0.01)


def test_the_websocket_url_sits_beside_the_rest_base() -> None:
    assert ws_url_for("https://api.boltz.exchange/v2") == "wss://api.boltz.exchange/v2/ws"
    assert ws_url_for("http://127.0.0.1:9001/v2/") == "ws://127.0.0.1:9001/v2/ws"
    with pytest.raises(ValueError, match="not an http"):
        ws_url_for("ftp://boltz/v2")
