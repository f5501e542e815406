"""One lnd node of the devnet: its command line and the admin calls used to set the network up.

Flags follow lnd's own integration harness (``lntest``): regtest on btcd, no seed backup (the
wallet is created and unlocked with a default password), no bootstrap, one confirmation for
channels, and short gossip delays so a new channel reaches the other nodes' graphs in seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from pathlib import Path
from typing import Any

from taskhold.devnet.layout import HOST, Layout, NodePaths, State, write_private
from taskhold.lightning.base import LightningError
from taskhold.lightning.lnd_permissions import bake_request
from taskhold.lightning.lnd_rest import JSONObject, LndRest, b64, json_int

__all__ = ["HOLD_EXPIRY_DELTA", "LndAdmin", "common_lnd_flags", "lnd_argv"]

HOLD_EXPIRY_DELTA = 18
"""Blocks before an accepted HTLC's expiry at which lnd cancels the hold invoice itself.

Passed explicitly (``--invoices.holdexpirydelta``) so the devnet does not drift with lnd's default:
in v0.21 that default is ``DefaultIncomingBroadcastDelta (16) + 2 = 18`` (older lnd: 10 + 2 = 12),
and it must stay above 16 or the cancel no longer prevents a force close. Recorded in
``devnet.json`` as ``hold_expiry_delta``."""


def lnd_argv(
    bin_dir: Path,
    layout: Layout,
    state: State,
    node: NodePaths,
    wallet: list[str] | None = None,
) -> list[str]:
    """lnd's command line for ``node``: loopback listeners, btcd over TLS, fast regtest timing.

    ``wallet`` replaces ``--noseedbackup`` for a node that runs watch-only with a remote signer
    (:func:`taskhold.devnet.remote_signer.watch_only_flags`)."""
    return [
        str(bin_dir / "lnd"),
        f"--lnddir={node.lnd_dir}",
        f"--alias={node.name}",
        "--bitcoin.regtest",
        "--bitcoin.node=btcd",
        f"--btcd.rpchost={HOST}:{layout.btcd_rpc_port}",
        f"--btcd.rpcuser={state.rpc_user}",
        f"--btcd.rpcpass={state.rpc_pass}",
        f"--btcd.rpccert={layout.btcd_rpc_cert}",
        *(wallet if wallet is not None else ["--noseedbackup"]),
        "--nobootstrap",
        "--bitcoin.defaultchanconfs=1",
        f"--invoices.holdexpirydelta={HOLD_EXPIRY_DELTA}",
        "--trickledelay=50",
        "--gossip.sub-batch-delay=5ms",
        "--caches.rpc-graph-cache-duration=100ms",
        "--db.batch-commit-interval=10ms",
        f"--listen={node.p2p_address}",
        f"--rpclisten={HOST}:{node.grpc_port}",
        f"--restlisten={HOST}:{node.rest_port}",
        f"--externalip={node.p2p_address}",
        *common_lnd_flags(),
    ]


def common_lnd_flags() -> list[str]:
    """Logging flags every lnd of the devnet shares, the remote signer's too."""
    return ["--debuglevel=info", "--logging.no-commit-hash"]


class LndAdmin:
    """Setup calls on one node: addresses, on-chain sends, peers, channels, graph."""

    def __init__(self, node: NodePaths, *, timeout: float = 60.0) -> None:
        self.node = node
        self.rest = LndRest(node.rest_url, node.tls_cert_path, node.macaroon_path, timeout=timeout)

    async def aclose(self) -> None:
        await self.rest.aclose()

    async def wait_rpc(self, within_seconds: float = 90.0) -> JSONObject:
        """Wait until lnd created its wallet and answers ``getinfo``; return the answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        while True:
            if self.node.macaroon_path.exists() and self.node.tls_cert_path.exists():
                with contextlib.suppress(LightningError):
                    return await self.rest.call("GET", "/v1/getinfo")
                # A first call may have read half-written credentials; start over.
                await self.rest.aclose()
            if loop.time() > deadline:
                raise LightningError(
                    f"lnd {self.node.name} did not start within {within_seconds:.0f} s"
                )
            await asyncio.sleep(0.3)

    async def getinfo(self) -> JSONObject:
        return await self.rest.call("GET", "/v1/getinfo")

    async def new_address(self) -> str:
        answer = await self.rest.call(
            "GET", "/v1/newaddress", params={"type": "WITNESS_PUBKEY_HASH"}
        )
        return str(answer["address"])

    async def confirmed_balance_sat(self) -> int:
        answer = await self.rest.call("GET", "/v1/balance/blockchain")
        return json_int(answer.get("confirmed_balance"))

    async def send_coins(self, address: str, amount_sat: int) -> str:
        answer = await self.rest.call(
            "POST", "/v1/transactions", body={"addr": address, "amount": str(amount_sat)}
        )
        return str(answer["txid"])

    async def peers(self) -> set[str]:
        answer = await self.rest.call("GET", "/v1/peers")
        return {peer["pub_key"] for peer in answer.get("peers") or ()}

    async def connect(self, pubkey: str, address: str) -> None:
        """Connect to a peer and keep the connection (lnd reconnects to it after a restart)."""
        if pubkey in await self.peers():
            return
        try:
            await self.rest.call(
                "POST",
                "/v1/peers",
                body={"addr": {"pubkey": pubkey, "host": address}, "perm": True, "timeout": "30"},
            )
        except LightningError as exc:
            if "already connected" not in (exc.node_message or ""):
                raise

    async def channels(self) -> list[JSONObject]:
        answer = await self.rest.call("GET", "/v1/channels")
        return list(answer.get("channels") or ())

    async def pending_channels(self) -> list[JSONObject]:
        answer = await self.rest.call("GET", "/v1/channels/pending")
        return list(answer.get("pending_open_channels") or ())

    async def has_channel_with(self, pubkey: str) -> bool:
        """An open or pending-open channel with ``pubkey`` exists."""
        if any(channel.get("remote_pubkey") == pubkey for channel in await self.channels()):
            return True
        return any(
            pending.get("channel", {}).get("remote_node_pub") == pubkey
            for pending in await self.pending_channels()
        )

    async def open_channel(
        self,
        pubkey: str,
        capacity_sat: int,
        push_sat: int,
        *,
        private: bool = False,
        remote_max_htlcs: int | None = None,
    ) -> str:
        """Open a channel to ``pubkey`` (public unless ``private``; ``remote_max_htlcs`` bounds
        the HTLCs the peer may add to us at once); return its channel point (``txid:index``).
        The funding transaction still needs a block."""
        body: dict[str, Any] = {
            "node_pubkey": b64(bytes.fromhex(pubkey)),
            "local_funding_amount": str(capacity_sat),
            "push_sat": str(push_sat),
            "private": private,
            "spend_unconfirmed": False,
        }
        if remote_max_htlcs is not None:
            body["remote_max_htlcs"] = remote_max_htlcs
        answer = await self.rest.call("POST", "/v1/channels", body=body)
        txid = (
            answer.get("funding_txid_str")
            or base64.b64decode(str(answer.get("funding_txid_bytes") or ""))[::-1].hex()
        )
        return f"{txid}:{json_int(answer.get('output_index'))}"

    async def channel_active(self, channel_point: str) -> bool:
        """The channel with this channel point is open and its link is up."""
        return any(
            channel.get("channel_point") == channel_point and channel.get("active")
            for channel in await self.channels()
        )

    async def active_channel_ids(self, pubkey: str) -> list[str]:
        """Ids of active channels with ``pubkey``."""
        return [
            str(channel["chan_id"])
            for channel in await self.channels()
            if channel.get("remote_pubkey") == pubkey and channel.get("active")
        ]

    async def knows_edge(self, chan_id: str) -> bool:
        """The channel is in this node's graph with both directions' policies."""
        try:
            edge: dict[str, Any] = await self.rest.call("GET", f"/v1/graph/edge/{chan_id}")
        except LightningError:
            return False
        return bool(edge.get("node1_policy")) and bool(edge.get("node2_policy"))

    async def reset_mission_control(self) -> None:
        """Forget failed routing attempts, so a retry is not steered away from a fresh channel."""
        await self.rest.call("POST", "/v2/router/mc/reset", body={})

    async def bake_escrow_macaroon(self) -> Path:
        """Bake the least-privilege macaroon of taskhold's escrow backend (``POST
        /v1/macaroon``, :mod:`taskhold.lightning.lnd_permissions`) and write it, owner-only,
        beside the admin macaroon. Baked again on every ``up``: the list follows the code."""
        answer = await self.rest.call("POST", "/v1/macaroon", body=bake_request())
        path = self.node.escrow_macaroon_path
        write_private(path, bytes.fromhex(str(answer["macaroon"])))
        return path
