"""btcd on regtest: its command line and the few JSON-RPC calls the devnet needs.

btcd has no ``generatetoaddress``: ``generate`` pays the address given by ``--miningaddr`` when
btcd started. The devnet therefore starts btcd without one, asks the employer's lnd for an
address, and restarts btcd with it (lnd's docker tutorial does the same); every later start uses
the address recorded in ``state.json``.

TLS stays on (lnd's btcd client cannot switch it off); btcd writes ``rpc.cert``/``rpc.key`` on
its first start.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx

from taskhold.devnet.layout import HOST, Layout, State

__all__ = ["BtcdRpc", "BtcdRpcError", "BtcdRpcRefused", "btcd_argv"]


def btcd_argv(bin_dir: Path, layout: Layout, state: State) -> list[str]:
    """btcd's command line: regtest, loopback only, ``--txindex``, mining to the employer."""
    argv = [
        str(bin_dir / "btcd"),
        "--regtest",
        f"--datadir={layout.btcd_dir / 'data'}",
        f"--logdir={layout.btcd_dir / 'logs'}",
        f"--rpccert={layout.btcd_rpc_cert}",
        f"--rpckey={layout.btcd_rpc_key}",
        f"--rpcuser={state.rpc_user}",
        f"--rpcpass={state.rpc_pass}",
        f"--rpclisten={HOST}:{layout.btcd_rpc_port}",
        f"--listen={HOST}:{layout.btcd_p2p_port}",
        "--txindex",
        "--rpcmaxwebsockets=50",
        "--rejectnonstd",
        "--nobanning",
        "--debuglevel=info",
    ]
    if state.mining_address:
        argv.append(f"--miningaddr={state.mining_address}")
    return argv


class BtcdRpcError(Exception):
    """btcd refused a JSON-RPC call or could not be reached."""


class BtcdRpcRefused(BtcdRpcError):
    """btcd answered the call with an error (e.g. it rejected a transaction); ``reason`` is its
    message. Unlike a plain :class:`BtcdRpcError`, retrying the same call will not help."""

    def __init__(self, method: str, reason: str) -> None:
        super().__init__(f"btcd {method}: {reason}")
        self.reason = reason


class BtcdRpc:
    """btcd's JSON-RPC over HTTPS with basic auth."""

    def __init__(self, layout: Layout, state: State, *, timeout: float = 30.0) -> None:
        self._url = layout.btcd_rpc_url
        self._cert = layout.btcd_rpc_cert
        self._auth = (state.rpc_user, state.rpc_pass)
        self._timeout = timeout

    async def call(self, method: str, *params: Any) -> Any:
        if not self._cert.exists():
            raise BtcdRpcError(f"btcd has not written {self._cert} yet")
        tls = ssl.create_default_context(cafile=str(self._cert))
        async with httpx.AsyncClient(verify=tls, auth=self._auth, timeout=self._timeout) as http:
            try:
                response = await http.post(
                    self._url,
                    json={"jsonrpc": "1.0", "id": "taskhold", "method": method, "params": params},
                )
            except httpx.TransportError as exc:
                raise BtcdRpcError(f"btcd unreachable at {self._url}: {exc}") from None
        if response.status_code == 401:
            raise BtcdRpcError("btcd refused the RPC login from state.json")
        answer = response.json()
        if answer.get("error"):
            raise BtcdRpcRefused(method, str(answer["error"].get("message")))
        return answer["result"]

    async def block_count(self) -> int:
        return int(await self.call("getblockcount"))

    async def generate(self, blocks: int) -> list[str]:
        """Mine ``blocks`` blocks to the mining address; their hashes."""
        return list(await self.call("generate", blocks))

    async def segwit_active(self) -> bool:
        info = await self.call("getblockchaininfo")
        segwit = (info.get("bip9_softforks") or {}).get("segwit") or {}
        return bool(segwit.get("status") == "active")

    async def wait_ready(self, within_seconds: float = 60.0) -> int:
        """Wait until btcd answers RPC; return the block count."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        while True:
            try:
                return await self.block_count()
            except (BtcdRpcError, ValueError) as exc:
                if loop.time() > deadline:
                    raise BtcdRpcError(
                        f"btcd did not answer within {within_seconds:.0f} s: {exc}"
                    ) from None
            await asyncio.sleep(0.2)
