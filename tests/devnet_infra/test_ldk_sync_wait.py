"""The wait for the devnet's LDK node to reach btcd's tip: long enough for a node that missed
many blocks, and, when it still times out, an error that says why (no devnet needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from taskhold.devnet import ldk_escrow
from taskhold.devnet.btcd import BtcdRpc
from taskhold.lightning.base import LightningError
from taskhold.lightning.ldk import LdkBackend


class _Node:
    def __init__(self, heights: list[int], log_path: Path | None) -> None:
        self._heights = heights
        self.log_path = log_path

    async def block_height(self) -> int:
        return self._heights.pop(0) if len(self._heights) > 1 else self._heights[0]


class _Btcd:
    def __init__(self, tip: int) -> None:
        self.tip = tip

    async def block_count(self) -> int:
        return self.tip


def _wait(node: _Node, btcd: _Btcd, **options: Any) -> int:
    return asyncio.run(
        ldk_escrow.wait_ldk_synced(cast(LdkBackend, node), cast(BtcdRpc, btcd), **options)
    )


def test_a_node_that_catches_up_returns_its_height() -> None:
    assert _wait(_Node([100, 100, 150, 200], None), _Btcd(200), within_seconds=5.0) == 200


def test_the_time_allowed_grows_with_the_blocks_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    allowed: list[float] = []

    async def record(check: Any, what: str, *, within_seconds: float) -> None:
        allowed.append(within_seconds)

    monkeypatch.setattr(ldk_escrow, "wait_for", record)
    _wait(_Node([1000], None), _Btcd(1000), within_seconds=60.0)
    _wait(_Node([1000], None), _Btcd(3000), within_seconds=60.0)
    assert allowed == [60.0, 60.0 + 2000 * ldk_escrow.SYNC_SECONDS_PER_BLOCK]


def test_a_timeout_quotes_the_nodes_chain_sync_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ldk_escrow, "SYNC_SECONDS_PER_BLOCK", 0.0)
    log = tmp_path / "ldk_node.log"
    log.write_text(
        "INFO  [ldk_node::connection:65] Connecting to peer\n"
        "INFO  [ldk_node::chain::bitcoind:138] Starting initial synchronization\n"
        "ERROR [ldk_node::chain::bitcoind:222] Failed to synchronize chain listeners\n"
    )
    with pytest.raises(LightningError) as raised:
        _wait(_Node([10], log), _Btcd(500), within_seconds=0.5)
    message = str(raised.value)
    assert "490 blocks behind" in message
    assert "Failed to synchronize chain listeners" in message
    assert "Connecting to peer" not in message


def test_a_timeout_without_a_log_still_says_what_it_waited_for() -> None:
    with pytest.raises(LightningError, match="reach btcd's tip"):
        _wait(_Node([10], None), _Btcd(11), within_seconds=0.3)
