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
from support.swap_parties import CLIENT_SK, DEST
from support.swap_server_world import ServerWorld, new_world

from taskhold.lightning.base import PaymentStatus
from taskhold.swaps.cooperative import finish_cooperative_spend, start_cooperative_spend
from taskhold.swaps.tx import build_spend

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


async def test_a_reverse_swap_runs_on_the_servers_own_loop(
    served: tuple[ServerWorld, str],
) -> None:
    """No hand-stepping: the lifespan's watcher locks up once the escrow pays, and the client
    hears each step over the WebSocket, as it would on the devnet."""
    world, url = served
    swap = await world.create_reverse()
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": "swap.update", "args": [swap.id]}))
        assert (await _next(ws))["event"] == "subscribe"
        assert await _until_status(ws, "swap.created") == ["swap.created"]
        await world.escrow.send_payment(swap.response["invoice"])
        assert await _until_status(ws, "transaction.mempool") == ["transaction.mempool"]
        utxo = await world.lockup_utxo(swap.id, swap.tree)
        tx = build_spend(utxo, DEST, 200)
        ours = start_cooperative_spend(tx, utxo, CLIENT_SK)
        body = {"preimage": swap.preimage.hex(), "pubNonce": ours.public.hex(),
                "transaction": tx.serialize().hex(), "index": 0}  # fmt: skip
        answer = (await world.post(f"/swap/reverse/{swap.id}/claim", body)).json()
        assert await _until_status(ws, "invoice.settled") == ["invoice.settled"]
    done = finish_cooperative_spend(
        tx,
        utxo,
        CLIENT_SK,
        ours,
        boltz_pubnonce=bytes.fromhex(answer["pubNonce"]),
        boltz_partial=bytes.fromhex(answer["partialSignature"]),
    )
    assert await world.chain.broadcast(done.serialize().hex())
    payment = await world.escrow.lookup_payment(swap.payment_hash)
    assert payment.status is PaymentStatus.SUCCEEDED
