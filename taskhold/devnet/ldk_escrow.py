"""The devnet's LDK escrow node: an embedded LDK Node next to the lnd nodes.

``taskhold devnet up --escrow ldk`` provisions it once, and every later ``up`` finds it ready:

- it follows the chain through the bitcoind shim (``bitcoind-shim``, a devnet process in front
  of btcd, :mod:`taskhold.devnet.bitcoind_shim`);
- its storage is ``<data_dir>/ldk-escrow/storage``; its seed is derived by taskhold's file key
  store in ``<data_dir>/ldk-escrow/keys`` (never written down itself);
- its on-chain wallet gets coins from the employer's, and it has two private channels: the
  employer's lnd opens one to it (LDK accepts only unannounced inbound channels from a node
  that does not announce itself), and it opens one to the worker's lnd;
- a payment each way proves the channels route.

The node runs only while something embeds it: here during provisioning, later in the taskhold
process that uses it as its escrow (one process at a time: its storage is locked).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from taskhold.devnet import processes
from taskhold.devnet.bootstrap import backend_of, open_channel, wait_for, wallet_of
from taskhold.devnet.btcd import BtcdRpc
from taskhold.devnet.chain import mine_and_sync
from taskhold.devnet.layout import HOST, Layout, State
from taskhold.devnet.lnd_node import LndAdmin
from taskhold.keys.file import FileKeyStore
from taskhold.keys.node_seed import ldk_node_seed
from taskhold.lightning.base import (
    LightningBackend,
    LightningError,
    PaymentFailed,
    PaymentStatus,
)
from taskhold.lightning.ldk import LdkBackend, LdkConfig

__all__ = [
    "BITCOIND_SHIM",
    "LDK_CHANNEL_SAT",
    "LDK_ESCROW",
    "LDK_ONCHAIN_SAT",
    "ensure_ldk_escrow",
    "ldk_escrow_config",
    "ldk_escrow_dir",
    "provision_ldk_escrow",
    "wait_channels_usable",
    "wait_ldk_synced",
]

Progress = Callable[[str], None]

LDK_ESCROW = "ldk-escrow"
BITCOIND_SHIM = "bitcoind-shim"
"""The shim's process name (pid and log file)."""
LDK_CHANNEL_SAT = 10_000_000
"""Each of the LDK escrow's two channels, as large as the lnd escrow's."""
LDK_CHANNEL_PUSH_SAT = 1_000_000
LDK_ONCHAIN_SAT = 20_000_000
"""Sent to the LDK wallet: its channel to the worker, the anchor reserve and fees."""
_INBOUND_CONFIRMATIONS = 6
"""LDK wants six confirmations of a channel someone else funds (not configurable in 0.7)."""


def ldk_escrow_dir(layout: Layout) -> Path:
    """The LDK escrow's storage and key store; they die with the chain."""
    return layout.data_dir / LDK_ESCROW


def ldk_escrow_config(layout: Layout, state: State, *, trusted: tuple[str, ...]) -> LdkConfig:
    """The devnet LDK escrow's configuration; the seed comes from its key store."""
    return LdkConfig(
        storage_dir=ldk_escrow_dir(layout) / "storage",
        seed=ldk_node_seed(FileKeyStore(_key_path(layout))),
        rpc_host=HOST,
        rpc_port=layout.bitcoind_shim_port,
        rpc_user=state.rpc_user,
        rpc_password=state.rpc_pass,
        listen=f"{HOST}:{layout.ldk_escrow_port}",
        trusted_peers_no_reserve=trusted,
    )


async def ensure_ldk_escrow(layout: Layout, state: State, progress: Progress) -> str:
    """Start the shim if it is not running, provision the LDK escrow if needed, and record it
    in ``devnet.json`` (``ldk_escrow``); return its pubkey."""
    await start_shim(layout, state, progress)
    btcd = BtcdRpc(layout, state)
    admins = {name: LndAdmin(layout.node(name)) for name in ("employer", "worker")}
    try:
        pubkeys = {name: str((await a.getinfo())["identity_pubkey"]) for name, a in admins.items()}
        trusted = (pubkeys["employer"], pubkeys["worker"])
        config = ldk_escrow_config(layout, state, trusted=trusted)
        pubkey = await provision_ldk_escrow(config, btcd, admins, pubkeys, progress)
    finally:
        for admin in admins.values():
            await admin.aclose()
    layout.update_connection_file(
        {
            "ldk_escrow": {
                "pubkey": pubkey,
                "p2p_address": config.listen,
                "storage_dir": str(config.storage_dir),
                "key_path": str(_key_path(layout)),
                "rpc_host": config.rpc_host,
                "rpc_port": config.rpc_port,
                "rpc_user": config.rpc_user,
                "rpc_pass": config.rpc_password,
                "listen": config.listen,
                "trusted_peers": list(trusted),
            }
        }
    )
    return pubkey


async def start_shim(layout: Layout, state: State, progress: Progress) -> None:
    """(Re)start the bitcoind shim unless it answers; its logins travel in the environment."""
    pid_path = layout.pid_path(BITCOIND_SHIM)
    if processes.alive_pid(pid_path) is not None and _port_open(layout.bitcoind_shim_port):
        return
    await processes.stop(pid_path)
    progress(f"starting the bitcoind shim for LDK on {HOST}:{layout.bitcoind_shim_port}")
    processes.spawn(
        [
            sys.executable,
            "-m",
            "taskhold.devnet.bitcoind_shim",
            "--btcd-rpc",
            f"{HOST}:{layout.btcd_rpc_port}",
            "--btcd-cert",
            str(layout.btcd_rpc_cert),
            "--listen",
            f"{HOST}:{layout.bitcoind_shim_port}",
        ],
        log_path=layout.log_path(BITCOIND_SHIM),
        pid_path=pid_path,
        env={
            **os.environ,
            "TASKHOLD_SHIM_BTCD_USER": state.rpc_user,
            "TASKHOLD_SHIM_BTCD_PASS": state.rpc_pass,
            "TASKHOLD_SHIM_USER": state.rpc_user,
            "TASKHOLD_SHIM_PASS": state.rpc_pass,
        },
    )

    async def answers() -> bool:
        if processes.alive_pid(pid_path) is None:
            raise LightningError(f"the bitcoind shim exited; see {layout.log_path(BITCOIND_SHIM)}")
        return _port_open(layout.bitcoind_shim_port)

    await wait_for(answers, "the bitcoind shim to listen", within_seconds=30.0, interval=0.2)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((HOST, port)) == 0


def _key_path(layout: Layout) -> Path:
    return ldk_escrow_dir(layout) / "keys" / "preimage.key"


async def provision_ldk_escrow(
    config: LdkConfig,
    btcd: BtcdRpc,
    admins: Mapping[str, LndAdmin],
    pubkeys: Mapping[str, str],
    progress: Progress,
) -> str:
    """Fund the LDK node, open its channels, prove both directions; return its pubkey.

    Each step looks first at what the node already has, so a second call only checks.
    """
    backend = await LdkBackend.open(config)
    try:
        node = backend.node
        ldk_pubkey = await backend.node_pubkey()
        await wait_ldk_synced(backend, btcd)
        await _fund(node, btcd, admins, progress)
        opened = await _open_channels(node, config, admins, pubkeys, ldk_pubkey, progress)
        if opened:
            progress(f"mining {_INBOUND_CONFIRMATIONS} blocks to confirm the LDK channels")
            await mine_and_sync(btcd, admins.values(), _INBOUND_CONFIRMATIONS)
        progress("waiting for the LDK escrow's channels to become usable")
        await wait_channels_usable(backend, {pubkeys["employer"], pubkeys["worker"]})
        await _prove_routes(backend, admins, progress)
        return ldk_pubkey
    finally:
        await backend.close()


SYNC_SECONDS_PER_BLOCK = 0.25
"""Time allowed for each block an LDK node is behind, on top of the fixed wait: a node that
was stopped while blocks were mined fetches and applies every one of them first."""


async def wait_ldk_synced(
    backend: LdkBackend, btcd: BtcdRpc, *, within_seconds: float = 120.0
) -> int:
    """Wait until the LDK node has processed btcd's tip (it polls every 2 s); return it.

    The wait grows with the blocks the node is behind. If it still times out, the error quotes
    the node's own log of its chain sync (LDK Node retries a failed sync after a back-off that
    doubles up to five minutes, and says so only there).
    """
    behind = max(await btcd.block_count() - await backend.block_height(), 0)
    allowed = within_seconds + SYNC_SECONDS_PER_BLOCK * behind

    async def synced() -> bool:
        return await backend.block_height() >= await btcd.block_count()

    what = f"the LDK node to reach btcd's tip ({behind} blocks behind at first)"
    try:
        await wait_for(synced, what, within_seconds=allowed)
    except LightningError as error:
        raise LightningError(f"{error}{_sync_log(backend.log_path)}") from None
    return await backend.block_height()


def _sync_log(log_path: Path | None, lines: int = 12) -> str:
    """The node's last log lines about its chain sync, for an error message."""
    if log_path is None or not log_path.exists():
        return ""
    with log_path.open(errors="replace") as log:
        wanted = [line.rstrip() for line in log if "chain::" in line or "ERROR" in line]
    return f"; the node's log ({log_path}) ends:\n" + "\n".join(wanted[-lines:])


async def _fund(
    node: Any, btcd: BtcdRpc, admins: Mapping[str, LndAdmin], progress: Progress
) -> None:
    if await _spendable_sat(node) >= LDK_ONCHAIN_SAT // 2:
        return
    address = await asyncio.to_thread(lambda: node.onchain_payment().new_address())
    progress(f"sending {LDK_ONCHAIN_SAT:,} sat on-chain to the LDK escrow")
    await admins["employer"].send_coins(str(address), LDK_ONCHAIN_SAT)
    await mine_and_sync(btcd, admins.values(), 1)

    async def funded() -> bool:
        await asyncio.to_thread(node.sync_wallets)
        return await _spendable_sat(node) >= LDK_ONCHAIN_SAT // 2

    await wait_for(funded, "the LDK escrow's on-chain funds to confirm")


async def _spendable_sat(node: Any) -> int:
    balances = await asyncio.to_thread(node.list_balances)
    return int(balances.spendable_onchain_balance_sats)


async def _open_channels(
    node: Any,
    config: LdkConfig,
    admins: Mapping[str, LndAdmin],
    pubkeys: Mapping[str, str],
    ldk_pubkey: str,
    progress: Progress,
) -> bool:
    peers = {str(channel.counterparty_node_id) for channel in await _channels(node)}
    opened = False
    worker = admins["worker"]
    for name in ("employer", "worker"):
        # Persisted: the node dials both again whenever it starts, so its channels come back
        # at once instead of when lnd's reconnection backoff next tries.
        await asyncio.to_thread(node.connect, pubkeys[name], admins[name].node.p2p_address, True)
    if pubkeys["worker"] not in peers:
        progress(f"opening a {LDK_CHANNEL_SAT:,} sat private channel LDK escrow -> worker")
        await asyncio.to_thread(
            node.open_channel,
            pubkeys["worker"],
            worker.node.p2p_address,
            LDK_CHANNEL_SAT,
            LDK_CHANNEL_PUSH_SAT * 1000,
            None,
        )
        opened = True
    if pubkeys["employer"] not in peers:
        progress(f"opening a {LDK_CHANNEL_SAT:,} sat private channel employer -> LDK escrow")
        employer = admins["employer"]
        assert config.listen is not None
        await open_channel(
            employer,
            ldk_pubkey,
            config.listen,
            LDK_CHANNEL_SAT,
            LDK_CHANNEL_PUSH_SAT,
            private=True,
        )
        opened = True
    return opened


async def wait_channels_usable(
    backend: LdkBackend, peers: set[str], *, within_seconds: float = 120.0
) -> None:
    """Wait until the node has a usable channel with each of ``peers`` (after a start the
    channels are re-established with the peers first)."""
    await wait_for(
        lambda: _usable(backend.node, peers),
        "the LDK escrow's channels to become usable",
        within_seconds=within_seconds,
    )


async def _channels(node: Any) -> list[Any]:
    return list(await asyncio.to_thread(node.list_channels))


async def _usable(node: Any, peers: set[str]) -> bool:
    usable = {str(c.counterparty_node_id) for c in await _channels(node) if c.is_usable}
    return peers <= usable


async def _prove_routes(
    backend: LdkBackend, admins: Mapping[str, LndAdmin], progress: Progress
) -> None:
    """1,000 sat LDK escrow -> worker and employer -> LDK escrow, retried for a while."""
    worker = wallet_of(admins["worker"])
    employer = backend_of(admins["employer"])
    try:
        progress("test payment LDK escrow -> worker")
        to_worker = await worker.create_invoice(1_000_000, memo="devnet LDK route check")
        await _pay_until_it_routes(backend, to_worker.payment_request, "LDK escrow -> worker")
        progress("test payment employer -> LDK escrow")
        to_escrow = await backend.create_invoice(1_000_000, memo="devnet LDK route check")
        await _pay_until_it_routes(employer, to_escrow, "employer -> LDK escrow")
    finally:
        await worker.close()
        await employer.close()


async def _pay_until_it_routes(payer: LightningBackend, payment_request: str, route: str) -> None:
    async def paid() -> bool:
        try:
            result = await payer.pay_invoice(
                payment_request, max_fee_msat=10_000, timeout_seconds=20, cltv_limit=2016
            )
        except PaymentFailed:
            return False
        # IN_FLIGHT is not proof: left pending while the node stops, the HTLC would time out
        # on chain when the devnet mines (a force close); keep waiting for the outcome.
        return result.status is PaymentStatus.SUCCEEDED

    await wait_for(paid, f"{route} to route", within_seconds=90.0)
