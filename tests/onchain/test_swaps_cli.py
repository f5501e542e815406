"""``taskhold swaps``: a participant recovers its coins from its swap records alone, with no
taskhold in the loop, against the swap server over real HTTP; nothing secret is printed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from support.onchain_world import OnChainWorld, onchain_world

from taskhold.boltz import statuses
from taskhold.boltz.ws import wait_for_status
from taskhold.onchain.funding import fund_by_swap
from taskhold.onchain.spending import SPEND_FEE_SAT
from taskhold.swaps.tree import Network


@contextlib.asynccontextmanager
async def served(world: OnChainWorld) -> AsyncIterator[str]:
    """The swap server over real HTTP on a loopback port (its watcher stays with the driver)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(world.swap_app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v2"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def taskhold(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskhold.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def world(tmp_path: Path) -> Any:
    async with onchain_world(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/cli.sqlite3") as w:
        yield w


async def test_an_employer_refunds_a_failed_funding_swap_from_the_command_line(
    world: OnChainWorld, tmp_path: Path
) -> None:
    employer = world.client()
    task_id = await world.new_task(employer)
    records = world.records("employer")
    swap = await fund_by_swap(
        employer,
        world.api,
        world.employer_wallet,
        records,
        task_id,
        network=Network.REGTEST,
        max_fee_sat=10_000,
    )
    world.chain.mine(1)
    await world.state_is(task_id, "FUNDED")
    await employer.cancel(task_id, reason="plans changed")
    await wait_for_status(
        world.api, swap.swap_id, {statuses.INVOICE_FAILED_TO_PAY}, timeout_s=10, interval=0.02
    )
    address = await world.employer_wallet.new_address()
    async with served(world) as url:
        code, out, err = await taskhold(
            "swaps", "list", "--records", str(records.directory), "--json"
        )
        assert code == 0, err
        (listed,) = json.loads(out)["swaps"]
        assert (listed["swap_id"], listed["state"]) == (swap.swap_id, "lockup_sent")
        record = records.get(swap.swap_id)
        assert record.secret_key_hex not in out

        args = ["--records", str(records.directory), "--boltz", url, "--address", address]
        code, out, err = await taskhold("swaps", "refund", swap.swap_id, *args, "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["cooperative"] is True
    assert records.get(swap.swap_id).refund_txid == answer["refund_txid"]
    assert world.employer_wallet.received_sat() == swap.quote.payer_sends - SPEND_FEE_SAT
    assert record.secret_key_hex not in out + err


async def test_refusals_are_one_line_without_a_traceback(tmp_path: Path) -> None:
    records = tmp_path / "none"
    args = ["--records", str(records), "--boltz", "http://127.0.0.1:9/v2", "--address", "x"]
    code, _, err = await taskhold("swaps", "refund", "0123456789ab", *args)
    assert code == 1
    assert "error:" in err and "Traceback" not in err
    assert "0123456789ab" in err
