"""A write whose answer was lost (the server went down after committing) is retried by the caller
with the same Idempotency-Key and gets the first answer, not ``idempotency_key_reused``."""

from __future__ import annotations

import time

import httpx
import pytest
from support.stacks import Stack
from support.task_flows import AMOUNT_MSAT, funded

from taskhold.client import TaskholdClient
from taskhold.nostr import NostrKeys


class Restarting(httpx.AsyncBaseTransport):
    """The server commits the next write, then goes down before answering and stays down for
    ``down_for`` connection attempts, longer than the client's own retries."""

    def __init__(self, inner: httpx.AsyncBaseTransport, down_for: int) -> None:
        self.inner = inner
        self.down_for = down_for
        self.crash_next_write = False
        self.writes_committed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down_for > 0 and not self.crash_next_write:
            self.down_for -= 1
            raise httpx.ConnectError("connection refused: the server is restarting")
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and self.crash_next_write:
            self.crash_next_write = False
            self.writes_committed += 1
            await response.aclose()
            raise httpx.RemoteProtocolError("server disconnected without sending a response")
        return response


async def _no_wait(delay_s: float) -> None:
    return None


def _client(stack: Stack, transport: Restarting, keys: NostrKeys) -> TaskholdClient:
    http = httpx.AsyncClient(transport=transport, base_url="http://taskhold.test")
    return TaskholdClient("http://taskhold.test", keys, http=http, sleep=_no_wait)


async def test_a_create_retried_after_a_restart_gets_the_first_answer(stack: Stack) -> None:
    transport = Restarting(stack.http._transport, down_for=0)
    async with _client(stack, transport, NostrKeys.generate()) as employer:
        transport.crash_next_write, transport.down_for = True, 20
        deadline = int(time.time()) + 3600
        with pytest.raises(httpx.ConnectError):
            await employer.create_task("Once", "", AMOUNT_MSAT, deadline, idempotency_key="k1")
        assert transport.writes_committed == 1
        transport.down_for = 0

        task = await employer.create_task("Once", "", AMOUNT_MSAT, deadline, idempotency_key="k1")

        assert task["state"] == "DRAFT"
        listed = await employer.list_tasks(employer=employer.pubkey_hex)
        assert [t["task_id"] for t in listed["tasks"]] == [task["task_id"]]


async def test_a_proof_retried_after_a_restart_gets_the_first_answer(stack: Stack) -> None:
    task = await funded(stack, stack.client())
    worker_keys = NostrKeys.generate()
    await stack.client(worker_keys).claim(task["task_id"])
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    transport = Restarting(stack.http._transport, down_for=0)
    async with _client(stack, transport, worker_keys) as worker:
        proof = {"url": "https://example.org/haiku"}
        transport.crash_next_write, transport.down_for = True, 20
        with pytest.raises(httpx.ConnectError):
            await worker.submit_proof(task["task_id"], proof, invoice, idempotency_key="p1")
        transport.down_for = 0

        # The log head moved with the committed proof; the retry still sends the first event.
        answer = await worker.submit_proof(task["task_id"], proof, invoice, idempotency_key="p1")

    assert answer["state"] == "SUBMITTED"


async def test_a_restart_within_the_retry_window_is_ridden_out(stack: Stack) -> None:
    transport = Restarting(stack.http._transport, down_for=0)
    async with _client(stack, transport, NostrKeys.generate()) as employer:
        transport.crash_next_write, transport.down_for = True, 6
        task = await employer.create_task("Once", "", AMOUNT_MSAT, int(time.time()) + 3600)
    assert task["state"] == "DRAFT"
    assert transport.writes_committed == 1
