"""The WebSocket at /v2/ws over a real uvicorn on port 0: subscribe, ping, unsubscribe, and an
update pushed on every status change of a subscribed swap."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets
from support.swap_server_world import ServerWorld, new_world

WAIT = 10.0


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ServerWorld, str]]:
    world = new_world(tmp_path, poll_seconds=0.02)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(world.app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    yield world, f"ws://127.0.0.1:{port}/v2/ws"
    server.should_exit = True
    await task
    sock.close()
    await world.close()


async def _next(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return message


async def _until_status(ws: Any, status: str) -> list[str]:
    seen: list[str] = []
    while status not in seen:
        message = await _next(ws)
        assert message["event"] == "update"
        seen += [arg["status"] for arg in message["args"]]
    return seen


async def test_updates_are_pushed_for_subscribed_swaps(
    served: tuple[ServerWorld, str],
) -> None:
    world, url = served
    swap = await world.create_submarine()
    other = await world.create_submarine()
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "ping"}))
        assert await _next(ws) == {"event": "pong"}
        await ws.send(json.dumps({"op": "subscribe", "channel": "swap.update", "args": [swap.id]}))
        assert await _next(ws) == {
            "event": "subscribe",
            "channel": "swap.update",
            "args": [swap.id],
        }
        current = await _next(ws)
        assert current["args"] == [{"id": swap.id, "status": "invoice.set"}]
        await world.fund_submarine(other)  # not subscribed: no update about it
        await world.fund_submarine(swap)
        seen = await _until_status(ws, "transaction.mempool")
        assert seen == ["transaction.mempool"]
        world.chain.mine()
        seen = await _until_status(ws, "invoice.pending")
        assert seen == ["transaction.confirmed", "invoice.pending"]
        await ws.send(json.dumps({"op": "subscribe", "channel": "nope", "args": [swap.id]}))
        assert (await _next(ws))["event"] == "error"
        await ws.send("{not json")
        assert (await _next(ws))["event"] == "error"
        await ws.send(b"\x00\xff")
        assert (await _next(ws))["event"] == "error"
        await ws.send(json.dumps({"op": "subscribe", "channel": "swap.update", "args": "x"}))
        assert (await _next(ws))["event"] == "error"
        await ws.send(
            json.dumps({"op": "unsubscribe", "channel": "swap.update", "args": [swap.id]})
        )
        assert (await _next(ws))["event"] == "unsubscribe"
        claim_pending = asyncio.Event()
        world.watcher.records.listeners.append(
            lambda r: r.status == "transaction.claim.pending" and claim_pending.set()
        )
        await world.escrow.settle_invoice(swap.preimage)
        await asyncio.wait_for(claim_pending.wait(), WAIT)
        await ws.send(json.dumps({"op": "ping"}))
        assert await _next(ws) == {"event": "pong"}  # the two changes were not pushed
