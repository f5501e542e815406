"""``up``, ``down``, ``status``, ``mine`` and ``restart``: the devnet's lifecycle over one data dir.

``up`` is safe to repeat: when every recorded process is alive and answers, it does nothing.
Otherwise it stops whatever is left and builds a **fresh** network: btcd deletes a regtest chain
each time it starts (``removeRegressionDB`` in btcd's ``btcd.go``, no flag turns it off), and lnd
wallets and channels cannot outlive their chain, so chain, wallets and channels are recreated.
Only ``state.json`` (ports, btcd login) is kept, and the previous run's logs as ``*.log.1``.

The swap server (:mod:`taskhold.devnet.swap_server`, test infrastructure playing Boltz on the
``swap`` node) starts last, once that node's channel is active, and ``up`` waits until it answers.
It is not part of the network: when only the server has died, ``up`` starts it again and keeps
the network.

A failed ``up`` stops every process it started. ``down`` stops the swap server first, then the
lnd nodes, then btcd, each by its recorded pid, and returns only when all are gone.
``restart_node`` stops one lnd (gracefully, or with SIGKILL as a crash would) and starts it
again on the same data dir: unlike btcd's chain, an lnd wallet and its channels survive, so this
is how tests take a node away mid-task; ``stop_node`` and ``start_node`` do the two halves
separately, for a node that stays away while the test goes on.

``up --escrow-nodes N`` runs N lnd escrow nodes (``escrow``, ``escrow-2`` ...), remembered in
``state.json``; ``up`` with a larger N on a running devnet adds the missing ones and keeps the
rest. ``add_liquidity`` opens one more channel to or from an escrow node: the devnet's side of
the escrow's liquidity hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from taskhold.devnet import bootstrap, processes, remote_signer
from taskhold.devnet.btcd import BtcdRpc, BtcdRpcError, btcd_argv
from taskhold.devnet.chain import mine_and_sync, wait_synced
from taskhold.devnet.layout import (
    MAX_ESCROW_NODES,
    SIGNER,
    SWAP_SERVER,
    Layout,
    State,
    busy_ports,
    ports_free,
)
from taskhold.devnet.ldk_escrow import BITCOIND_SHIM, ensure_ldk_escrow, ldk_escrow_dir
from taskhold.devnet.lnd_node import HOLD_EXPIRY_DELTA, LndAdmin, lnd_argv
from taskhold.lightning.base import LightningError
from taskhold.lightning.lnd_rest import json_int

__all__ = [
    "BINARIES",
    "DevnetError",
    "Progress",
    "add_ldk_escrow",
    "add_liquidity",
    "down",
    "mine",
    "mining",
    "restart_node",
    "start_node",
    "status",
    "stop_node",
    "up",
]

Progress = Callable[[str], None]
BINARIES = ("lnd", "lncli", "btcd", "btcctl")
FIRST_FUNDING_HEIGHT = 3 * 144
"""Mined to the employer on a new chain. btcd's regtest activates segwit by BIP9 signalling, so
only after three 144-block windows (lnd's own harness mines the same); lnd cannot spend or open
channels before. Coinbases up to height 332 are then mature (100 confirmations)."""


class DevnetError(Exception):
    """The devnet could not be started, reached or changed; the message says what to do."""


def _quiet(_: str) -> None:
    pass


def _layout(data_dir: str | Path, base_port: int | None = None) -> tuple[Layout, State | None]:
    layout = Layout(data_dir)
    state = layout.load_state()
    if state is not None:
        if base_port is not None and base_port != state.base_port:
            raise DevnetError(
                f"{layout.data_dir} was created with base port {state.base_port}; "
                f"use that, or another --data-dir for base port {base_port}"
            )
        layout = Layout.of(data_dir, state)
    elif base_port is not None:
        layout = Layout(data_dir, base_port)
    return layout, state


@contextlib.asynccontextmanager
async def _admins(layout: Layout) -> AsyncIterator[dict[str, LndAdmin]]:
    admins = {name: LndAdmin(layout.node(name)) for name in layout.node_names}
    try:
        yield admins
    finally:
        for admin in admins.values():
            await admin.aclose()


async def _answers(layout: Layout, state: State) -> bool:
    """Every daemon is alive, btcd and each lnd answer, and the connection file exists (the
    swap server is looked at separately: it can be restarted without rebuilding the network)."""
    if not layout.connection_path.exists():
        return False
    if any(processes.alive_pid(layout.pid_path(name)) is None for name in layout.daemon_names):
        return False
    try:
        await BtcdRpc(layout, state, timeout=5.0).block_count()
        async with _admins(layout) as admins:
            for admin in admins.values():
                await admin.getinfo()
    except (BtcdRpcError, LightningError):
        return False
    return True


async def up(
    data_dir: str | Path,
    *,
    bin_dir: str | Path,
    progress: Progress | None = None,
    base_port: int | None = None,
    escrow: str | None = None,
    escrow_nodes: int | None = None,
    remote_signer: bool | None = None,
) -> Path:
    r"""Start (or find running) the devnet in ``data_dir``; return its connection file.

    ``escrow="ldk"`` also provisions the embedded LDK escrow and makes it the devnet's escrow
    (remembered in ``state.json``, so later ``up``\ s keep it); ``"lnd"`` switches back.
    ``escrow_nodes`` lnd escrow nodes run (remembered too; default: as before, else 1).
    ``remote_signer`` runs the escrow lnd watch-only with its keys in a separate signer lnd
    (:mod:`taskhold.devnet.remote_signer`; remembered; default: as before, else not); a running
    network cannot switch, its escrow wallet is one or the other for good.
    """
    say = progress or _quiet
    if escrow not in (None, "lnd", "ldk"):
        raise DevnetError(f"unknown escrow {escrow!r}: choose lnd or ldk")
    check_escrow_nodes(escrow_nodes)
    layout, state = _layout(data_dir, base_port)
    if state is not None and await _answers(layout, state):
        say("devnet already running")
        if escrow_nodes is not None and escrow_nodes < state.escrow_nodes:
            raise DevnetError(
                f"the running devnet has {state.escrow_nodes} escrow nodes and cannot drop any; "
                f"`taskhold devnet down`, then `up --escrow-nodes {escrow_nodes}` builds a new one"
            )
        if remote_signer is not None and remote_signer != state.remote_signer:
            flag = "--remote-signer" if remote_signer else "--no-remote-signer"
            raise DevnetError(
                f"the running devnet's escrow {'has' if state.remote_signer else 'has no'} "
                f"remote signer and cannot switch; `taskhold devnet down`, then `up {flag}` "
                "builds a new one"
            )
        if escrow_nodes is not None and escrow_nodes > state.escrow_nodes:
            layout = await _add_escrow_nodes(
                layout, state, escrow_nodes, _bin_path(bin_dir, ("lnd",)), say
            )
        await _upgrade_escrow_macaroons(layout, say)
        if await swap_server_height(layout) is None:
            say("the swap server does not answer; starting it again")
            await _start_swap_server(layout, say)
        await _choose_escrow(layout, state, escrow, say)
        return layout.connection_path
    bin_path = _bin_path(bin_dir, BINARIES)
    if state is None:
        state = State.new(layout.base_port)
    await down(layout.data_dir)  # leftovers of a half-running network
    _clear_network(layout, state)
    if escrow_nodes is not None:
        state.escrow_nodes = escrow_nodes
    if remote_signer is not None:
        state.remote_signer = remote_signer
    layout = Layout.of(layout.data_dir, state)
    busy = ports_free(layout.base_port, state.escrow_nodes)
    if busy:
        raise DevnetError(
            f"ports {', '.join(map(str, busy))} on 127.0.0.1 are in use; "
            "choose another --base-port (with a new --data-dir)"
        )
    layout.save_state(state)
    try:
        await _start(layout, state, bin_path, say)
        await _choose_escrow(layout, state, escrow, say)
    except BaseException:
        say("start failed; stopping what was started")
        await down(layout.data_dir)
        raise
    return layout.connection_path


def check_escrow_nodes(escrow_nodes: int | None) -> None:
    """Refuse an escrow node count the layout has no ports for."""
    if escrow_nodes is not None and not 1 <= escrow_nodes <= MAX_ESCROW_NODES:
        raise DevnetError(
            f"--escrow-nodes must be between 1 and {MAX_ESCROW_NODES}, not {escrow_nodes}"
        )


def _bin_path(bin_dir: str | Path, needed: tuple[str, ...]) -> Path:
    bin_path = Path(bin_dir)
    missing = [name for name in needed if not (bin_path / name).is_file()]
    if missing:
        raise DevnetError(
            f"{', '.join(missing)} not found in {bin_path}; run scripts/build-lnd to build them"
        )
    return bin_path


async def _add_escrow_nodes(
    layout: Layout, state: State, count: int, bin_dir: Path, say: Progress
) -> Layout:
    """Start escrow nodes up to ``count`` on the running devnet, fund them and open their
    channels as ``up`` would have; the others keep running untouched."""
    grown = Layout(layout.data_dir, layout.base_port, count, remote_signer=state.remote_signer)
    added = grown.escrow_node_names[state.escrow_nodes :]
    busy = busy_ports(
        port
        for name in added
        for port in (
            grown.node(name).p2p_port,
            grown.node(name).grpc_port,
            grown.node(name).rest_port,
        )
    )
    if busy:
        raise DevnetError(
            f"ports {', '.join(map(str, busy))} on 127.0.0.1 are in use; the new escrow nodes "
            "need them"
        )
    before = state.escrow_nodes
    state.escrow_nodes = count  # recorded first, so a `down` stops them whatever happens next
    layout.save_state(state)
    try:
        for name in added:
            shutil.rmtree(grown.node(name).lnd_dir, ignore_errors=True)
            say(f"starting lnd {name}")
            _start_lnd(grown, state, bin_dir, name)
        btcd = BtcdRpc(grown, state)
        async with _admins(grown) as admins:
            pubkeys = {
                name: str((await admin.wait_rpc())["identity_pubkey"])
                for name, admin in admins.items()
            }
            say("waiting for the new nodes to sync")
            await wait_synced(btcd, admins.values(), within_seconds=120.0)
            await bootstrap.fund_wallets(btcd, admins, say)
            await bootstrap.open_channels(btcd, admins, pubkeys, say)
            await _bake_escrow_macaroons(admins, added, say)
        document = json.loads(grown.connection_path.read_text())
        nodes = dict(document.get("nodes") or {})
        nodes.update({name: grown.node_entry(name, pubkeys[name]) for name in added})
        grown.update_connection_file(
            {"nodes": nodes, "escrow_nodes": list(grown.escrow_node_names)}
        )
    except BaseException:
        say("adding escrow nodes failed; stopping the new ones")
        for name in added:
            await processes.stop(grown.pid_path(name))
        state.escrow_nodes = before
        layout.save_state(state)
        raise
    return grown


async def _choose_escrow(layout: Layout, state: State, escrow: str | None, say: Progress) -> None:
    """Provision the LDK escrow when it is (or becomes) the devnet's escrow; record the choice
    in ``state.json`` and ``devnet.json``."""
    if escrow is not None and escrow != state.escrow_backend:
        state.escrow_backend = escrow
        layout.save_state(state)
    if state.escrow_backend == "ldk":
        await ensure_ldk_escrow(layout, state, say)
    layout.update_connection_file({"escrow_backend": state.escrow_backend})


async def add_ldk_escrow(data_dir: str | Path, progress: Progress | None = None) -> Path:
    """Provision the LDK escrow on a running devnet without making it the default escrow
    (tests run the lnd and the LDK escrow side by side); return the connection file."""
    layout, state = _layout(data_dir)
    if state is None or not await _answers(layout, state):
        raise DevnetError(f"no devnet running in {layout.data_dir}; run `taskhold devnet up`")
    await ensure_ldk_escrow(layout, state, progress or _quiet)
    return layout.connection_path


def _clear_network(layout: Layout, state: State) -> None:
    """Remove chain, wallets, swap records and pid files; keep the previous logs as ``*.log.1``."""
    lnd_dirs = [layout.node(name).lnd_dir for name in (*layout.node_names, SIGNER)]
    lnd_dirs += [path for path in layout.data_dir.glob("escrow-*") if path.is_dir()]
    for directory in (layout.btcd_dir, *lnd_dirs, layout.swap_server_dir, ldk_escrow_dir(layout)):
        shutil.rmtree(directory, ignore_errors=True)
    shutil.rmtree(layout.pids_dir, ignore_errors=True)
    for name in dict.fromkeys((*layout.process_names, SIGNER)):
        log = layout.log_path(name)
        if log.exists():
            log.replace(log.with_suffix(".log.1"))
    state.mining_address = ""  # it belonged to the employer wallet just removed


async def _start(layout: Layout, state: State, bin_dir: Path, say: Progress) -> None:
    btcd = BtcdRpc(layout, state)
    await _mine_to_employer(layout, state, bin_dir, btcd, say)
    watch_only = None
    if layout.remote_signer:
        say(f"starting the escrow's remote signer, lnd {SIGNER}")
        watch_only = await remote_signer.provision(layout, bin_dir)
    for name in layout.node_names:
        say(f"starting lnd {name}")
        _start_lnd(layout, state, bin_dir, name)
    if watch_only is not None:
        say(f"creating lnd {remote_signer.REMOTE_SIGNED_NODE}'s watch-only wallet")
        await remote_signer.init_watch_only(
            layout.node(remote_signer.REMOTE_SIGNED_NODE), *watch_only
        )
    async with _admins(layout) as admins:
        pubkeys = {}
        for name, admin in admins.items():
            info = await admin.wait_rpc()
            pubkeys[name] = str(info["identity_pubkey"])
        say("waiting for the nodes to sync")
        await wait_synced(btcd, admins.values(), within_seconds=120.0)
        await bootstrap.fund_wallets(btcd, admins, say)
        await bootstrap.open_channels(btcd, admins, pubkeys, say)
        await bootstrap.prove_route(admins, say)
        await _bake_escrow_macaroons(admins, layout.escrow_node_names, say)
    layout.write_connection_file(state, pubkeys, hold_expiry_delta=HOLD_EXPIRY_DELTA)
    await _start_swap_server(layout, say)
    say(f"devnet up; connection file {layout.connection_path}")


async def _bake_escrow_macaroons(
    admins: dict[str, LndAdmin], names: Iterable[str], say: Progress
) -> None:
    """Bake each escrow node's least-privilege macaroon, the one its connection names."""
    for name in names:
        say(f"baking {name}'s taskhold macaroon")
        await admins[name].bake_escrow_macaroon()


async def _upgrade_escrow_macaroons(layout: Layout, say: Progress) -> None:
    """A devnet started before taskhold got its own macaroon names admin for its escrow nodes
    in ``devnet.json``: bake theirs now and point the file at them (nothing to do otherwise)."""
    if not layout.connection_path.exists():
        return
    document = json.loads(layout.connection_path.read_text())
    nodes = dict(document.get("nodes") or {})
    stale = [
        name
        for name in layout.escrow_node_names
        if name in nodes
        and (
            nodes[name].get("macaroon_path") != str(layout.node(name).escrow_macaroon_path)
            or not layout.node(name).escrow_macaroon_path.exists()
        )
    ]
    if not stale:
        return
    async with _admins(layout) as admins:
        await _bake_escrow_macaroons(admins, stale, say)
    for name in stale:
        nodes[name] = layout.node_entry(name, str(nodes[name].get("pubkey", "")))
    layout.update_connection_file({"nodes": nodes})


async def _mine_to_employer(
    layout: Layout, state: State, bin_dir: Path, btcd: BtcdRpc, say: Progress
) -> None:
    """Get an address from the employer's new wallet and mine the first chain to it.

    btcd mines only to the ``--miningaddr`` it started with, and lnd needs btcd running to
    create its wallet. So: btcd without an address, the employer's lnd alone for one address,
    then both stop and btcd restarts with it (a restart wipes btcd's regtest chain, which is
    still empty). No lnd runs across the restart: btcwallet's view of the tip would go stale
    and it would refuse to spend its coinbases.
    """
    say("starting btcd (regtest)")
    await _start_btcd(layout, state, bin_dir, btcd)
    say("creating the employer's wallet for the mining address")
    _start_lnd(layout, state, bin_dir, "employer")
    employer = LndAdmin(layout.node("employer"))
    try:
        await employer.wait_rpc()
        state.mining_address = await employer.new_address()
    finally:
        await employer.aclose()
    layout.save_state(state)
    await processes.stop(layout.pid_path("employer"))
    await processes.stop(layout.pid_path("btcd"))
    await _start_btcd(layout, state, bin_dir, btcd)
    say(f"mining {FIRST_FUNDING_HEIGHT} blocks to the employer (segwit activation)")
    await btcd.generate(FIRST_FUNDING_HEIGHT)
    if not await btcd.segwit_active():
        raise DevnetError(f"segwit is not active at height {FIRST_FUNDING_HEIGHT} on btcd")


def _start_lnd(layout: Layout, state: State, bin_dir: Path, name: str) -> None:
    watch_only = state.remote_signer and name == remote_signer.REMOTE_SIGNED_NODE
    wallet = remote_signer.watch_only_flags(layout) if watch_only else None
    processes.spawn(
        lnd_argv(bin_dir, layout, state, layout.node(name), wallet),
        log_path=layout.log_path(name),
        pid_path=layout.pid_path(name),
    )


async def _start_btcd(layout: Layout, state: State, bin_dir: Path, btcd: BtcdRpc) -> None:
    processes.spawn(
        btcd_argv(bin_dir, layout, state),
        log_path=layout.log_path("btcd"),
        pid_path=layout.pid_path("btcd"),
    )
    try:
        await btcd.wait_ready()
    except BtcdRpcError as exc:
        raise DevnetError(f"{exc}; see {layout.log_path('btcd')}") from None


async def _start_swap_server(
    layout: Layout, say: Progress, *, within_seconds: float = 60.0
) -> None:
    """(Re)start the swap server and wait until it answers ``GET /v2/chain/BTC/height``."""
    pid_path = layout.pid_path(SWAP_SERVER)
    await processes.stop(pid_path)  # one that is alive but does not answer
    say(f"starting the swap server at {layout.swap_server_url}")
    processes.spawn(
        [
            sys.executable,
            "-m",
            "taskhold.devnet.swap_server",
            "--devnet-dir",
            str(layout.data_dir),
        ],
        log_path=layout.log_path(SWAP_SERVER),
        pid_path=pid_path,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while await swap_server_height(layout) is None:
        if processes.alive_pid(pid_path) is None:
            raise DevnetError(f"the swap server exited; see {layout.log_path(SWAP_SERVER)}")
        if loop.time() > deadline:
            raise DevnetError(
                f"the swap server did not answer at {layout.swap_server_url} within "
                f"{within_seconds:.0f} s; see {layout.log_path(SWAP_SERVER)}"
            )
        await asyncio.sleep(0.3)


async def swap_server_height(layout: Layout) -> int | None:
    """The chain height the swap server reports, or ``None`` if it is not running or not
    answering."""
    if processes.alive_pid(layout.pid_path(SWAP_SERVER)) is None:
        return None
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            response = await http.get(f"{layout.swap_server_url}/chain/BTC/height")
        answer = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if isinstance(answer, dict):  # tolerate {"height": N} as well as Boltz's bare number
        answer = answer.get("height")
    return answer if isinstance(answer, int) else None


async def down(data_dir: str | Path) -> list[str]:
    """Stop every recorded process (the swap server, the lnd nodes, then btcd); return the names
    that were running."""
    layout, _ = _layout(data_dir)
    layout.connection_path.unlink(missing_ok=True)
    stopped = []
    leftover = [path.stem for path in layout.pids_dir.glob("escrow-*.pid")]  # from a failed add
    names = dict.fromkeys(
        (SWAP_SERVER, BITCOIND_SHIM, *layout.node_names, *leftover, SIGNER, "btcd")
    )
    for name in names:
        if await processes.stop(layout.pid_path(name)):
            stopped.append(name)
    return stopped


async def status(data_dir: str | Path) -> dict[str, Any]:
    """What runs in ``data_dir`` and what each node reports (height, sync, channels, balance)."""
    layout, state = _layout(data_dir)
    pids = {name: processes.alive_pid(layout.pid_path(name)) for name in layout.process_names}
    report: dict[str, Any] = {
        "data_dir": str(layout.data_dir),
        "base_port": layout.base_port if state else None,
        "running": state is not None and all(pid is not None for pid in pids.values()),
        "connection_file": str(layout.connection_path) if layout.connection_path.exists() else None,
        "processes": {
            name: {"pid": pid, "alive": pid is not None, "log": str(layout.log_path(name))}
            for name, pid in pids.items()
        },
        "block_height": None,
        "nodes": {},
        "swap_server": {"url": layout.swap_server_url, "block_height": None},
        "escrow_backend": state.escrow_backend if state else None,
        "escrow_nodes": list(layout.escrow_node_names) if state else None,
        "remote_signer": layout.remote_signer,
    }
    if state is None:
        return report
    if state.escrow_backend == "ldk":
        shim = processes.alive_pid(layout.pid_path(BITCOIND_SHIM))
        report["ldk_escrow"] = {
            "pubkey": _connection_section(layout, "ldk_escrow").get("pubkey"),
            "bitcoind_shim": {"pid": shim, "alive": shim is not None},
        }
    report["swap_server"]["block_height"] = await swap_server_height(layout)
    if pids["btcd"] is not None:
        with contextlib.suppress(BtcdRpcError):
            report["block_height"] = await BtcdRpc(layout, state, timeout=5.0).block_count()
    async with _admins(layout) as admins:
        for name, admin in admins.items():
            if pids[name] is None:
                continue
            report["nodes"][name] = await _node_report(admin)
    return report


def _connection_section(layout: Layout, name: str) -> dict[str, Any]:
    try:
        section = json.loads(layout.connection_path.read_text()).get(name)
    except (OSError, ValueError):
        return {}
    return section if isinstance(section, dict) else {}


async def _node_report(admin: LndAdmin) -> dict[str, Any]:
    try:
        info = await admin.getinfo()
        balance = await admin.rest.call("GET", "/v1/balance/channels")
    except LightningError as exc:
        return {"rest_url": admin.node.rest_url, "error": str(exc)}
    return {
        "rest_url": admin.node.rest_url,
        "pubkey": info.get("identity_pubkey"),
        "synced_to_chain": bool(info.get("synced_to_chain")),
        "block_height": json_int(info.get("block_height")),
        "active_channels": json_int(info.get("num_active_channels")),
        "local_balance_msat": json_int((balance.get("local_balance") or {}).get("msat")),
        "remote_balance_msat": json_int((balance.get("remote_balance") or {}).get("msat")),
    }


async def mine(data_dir: str | Path, blocks: int, *, step: int = 1) -> list[str]:
    """Mine ``blocks`` blocks and wait until every node has processed them; their hashes."""
    if blocks < 1:
        raise DevnetError("mine at least one block")
    layout, state = _layout(data_dir)
    if state is None or processes.alive_pid(layout.pid_path("btcd")) is None:
        raise DevnetError(f"no devnet running in {layout.data_dir}; run `taskhold devnet up`")
    btcd = BtcdRpc(layout, state)
    async with _admins(layout) as admins:
        running = [
            admin
            for name, admin in admins.items()
            if processes.alive_pid(layout.pid_path(name)) is not None
        ]
        return await mine_and_sync(btcd, running, blocks, step=step)


@contextlib.asynccontextmanager
async def mining(data_dir: str | Path, every_s: float = 1.0) -> AsyncIterator[None]:
    """A block every ``every_s`` while the body waits for on-chain confirmations (the on-chain
    demo, the swap tests): the devnet has no miner of its own."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every_s)
            await mine(data_dir, 1)

    miner = asyncio.create_task(loop())
    try:
        yield
    finally:
        miner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await miner


async def restart_node(
    data_dir: str | Path,
    name: str,
    *,
    bin_dir: str | Path,
    kill: bool = False,
    down_seconds: float = 0.0,
    within_seconds: float = 120.0,
) -> None:
    """Stop lnd ``name`` (SIGTERM, or SIGKILL with ``kill``), keep it down ``down_seconds``, start
    it on the same data dir, and return once it is unlocked, synced to btcd's tip and every
    channel it had is active again (its peers reconnect: they were connected with ``perm``).
    The escrow's remote signer is back once it answers (the watch-only escrow reconnects)."""
    layout, state = _running_node(data_dir, name)
    if name == SIGNER:
        await _stop_node(layout, name, kill=kill)
        await asyncio.sleep(down_seconds)
        await remote_signer.start_signer(layout, Path(bin_dir))
        return
    admin = LndAdmin(layout.node(name))
    try:
        try:
            channels = len(await admin.channels())
        except LightningError:
            channels = 0  # already down: wait for whatever channels it reports once up
        await admin.rest.aclose()  # its pooled connections die with the process
        await _stop_node(layout, name, kill=kill)
        await asyncio.sleep(down_seconds)
        await _start_and_wait(layout, state, Path(bin_dir), admin, channels, within_seconds)
    finally:
        await admin.aclose()


def _running_node(data_dir: str | Path, name: str) -> tuple[Layout, State]:
    """The layout of the running devnet in ``data_dir``, which has an lnd node ``name`` (one of
    the network's, or the escrow's remote signer)."""
    layout, state = _layout(data_dir)
    if name not in (*layout.node_names, *layout.signer_names):
        raise DevnetError(
            f"unknown node {name!r}; the devnet's nodes are "
            f"{', '.join((*layout.node_names, *layout.signer_names))}"
        )
    if state is None or processes.alive_pid(layout.pid_path("btcd")) is None:
        raise DevnetError(f"no devnet running in {layout.data_dir}; run `taskhold devnet up`")
    return layout, state


async def stop_node(data_dir: str | Path, name: str, *, kill: bool = False) -> bool:
    """Stop lnd ``name`` (SIGTERM, or SIGKILL with ``kill``) and leave it down until
    :func:`start_node`; whether it was running. The rest of the devnet carries on."""
    layout, _ = _running_node(data_dir, name)
    running = processes.alive_pid(layout.pid_path(name)) is not None
    await _stop_node(layout, name, kill=kill)
    return running


async def start_node(
    data_dir: str | Path, name: str, *, bin_dir: str | Path, within_seconds: float = 120.0
) -> None:
    """Start lnd ``name`` again on its data dir (after :func:`stop_node`); return once it is
    synced and every channel it has is active on both ends (the remote signer: once it
    answers). A no-op if it answers already."""
    layout, state = _running_node(data_dir, name)
    if name == SIGNER or (state.remote_signer and name == remote_signer.REMOTE_SIGNED_NODE):
        await remote_signer.start_signer(layout, Path(bin_dir))  # the watch-only lnd needs it
    if name == SIGNER:
        return
    admin = LndAdmin(layout.node(name))
    try:
        if processes.alive_pid(layout.pid_path(name)) is not None:
            with contextlib.suppress(LightningError):
                await admin.getinfo()
                return
            await _stop_node(layout, name, kill=False)  # alive but not answering
        await _start_and_wait(layout, state, Path(bin_dir), admin, 1, within_seconds)
    finally:
        await admin.aclose()


async def _start_and_wait(
    layout: Layout,
    state: State,
    bin_dir: Path,
    admin: LndAdmin,
    channels: int,
    within_seconds: float,
) -> None:
    name = admin.node.name
    if state.remote_signer and name == remote_signer.REMOTE_SIGNED_NODE:
        await remote_signer.start_signer(layout, bin_dir)  # the watch-only lnd needs it to start
    _start_lnd(layout, state, bin_dir, name)
    pubkey = str((await admin.wait_rpc(within_seconds))["identity_pubkey"])
    await wait_synced(BtcdRpc(layout, state), [admin], within_seconds=within_seconds)
    await _wait_channels_active(admin, None, channels, within_seconds)
    async with _admins(layout) as admins:
        for peer_name, peer in admins.items():
            if peer_name != name and processes.alive_pid(layout.pid_path(peer_name)):
                await _wait_channels_active(peer, pubkey, 0, within_seconds)


MIN_CHANNEL_SAT = 20_000
"""lnd's smallest channel (``--minchansize`` default)."""


async def add_liquidity(
    data_dir: str | Path,
    node: str,
    *,
    inbound_sat: int | None = None,
    outbound_sat: int | None = None,
    within_seconds: float = 120.0,
) -> dict[str, Any]:
    """Open one channel that gives escrow node ``node`` about ``inbound_sat`` more inbound (the
    employer opens it to the node) or ``outbound_sat`` more outbound (the node opens it to the
    worker); mine it in, wait until it is active on both ends, and describe it.

    Every call opens a new channel: a repeated call adds liquidity again, it never fails for
    the channel opened before.
    """
    if (inbound_sat is None) == (outbound_sat is None):
        raise DevnetError("give exactly one of --inbound-sat and --outbound-sat")
    amount_sat = inbound_sat if inbound_sat is not None else outbound_sat
    assert amount_sat is not None
    if not MIN_CHANNEL_SAT <= amount_sat <= bootstrap.MAX_CHANNEL_SAT:
        raise DevnetError(
            f"a channel holds {MIN_CHANNEL_SAT:,} to {bootstrap.MAX_CHANNEL_SAT:,} sat, "
            f"not {amount_sat:,}"
        )
    escrow_nodes = _layout(data_dir)[0].escrow_node_names
    if node not in escrow_nodes:
        raise DevnetError(
            f"add-liquidity is for the escrow nodes ({', '.join(escrow_nodes)}), not {node!r}"
        )
    layout, state = _running_node(data_dir, node)
    opener_name, acceptor_name = ("employer", node) if inbound_sat is not None else (node, "worker")
    async with _admins(layout) as admins:
        opener, acceptor = admins[opener_name], admins[acceptor_name]
        try:
            acceptor_pubkey = str((await acceptor.getinfo())["identity_pubkey"])
            await opener.getinfo()
        except LightningError as exc:
            raise DevnetError(
                f"lnd {opener_name} or {acceptor_name} does not answer: {exc}"
            ) from None
        channel_point = await bootstrap.open_channel(
            opener, acceptor_pubkey, acceptor.node.p2p_address, amount_sat, 0
        )
        running = [
            admin
            for name, admin in admins.items()
            if processes.alive_pid(layout.pid_path(name)) is not None
        ]
        await mine_and_sync(BtcdRpc(layout, state), running, bootstrap.ANNOUNCEMENT_CONFIRMATIONS)
        for admin in (opener, acceptor):
            await bootstrap.wait_for(
                functools.partial(admin.channel_active, channel_point),
                f"channel {channel_point} to become active on {admin.node.name}",
                within_seconds=within_seconds,
            )
    return {
        "node": node,
        "direction": "inbound" if inbound_sat is not None else "outbound",
        "peer": acceptor_name if opener_name == node else opener_name,
        "capacity_sat": amount_sat,
        "channel_point": channel_point,
    }


async def _stop_node(layout: Layout, name: str, *, kill: bool) -> None:
    pid_path = layout.pid_path(name)
    pid = processes.alive_pid(pid_path)
    if kill and pid is not None:
        os.kill(pid, signal.SIGKILL)
    await processes.stop(pid_path)  # after a SIGKILL: only waits for the process to be gone


async def _wait_channels_active(
    admin: LndAdmin, with_pubkey: str | None, at_least: int, within_seconds: float
) -> None:
    """Wait until ``admin`` has ``at_least`` channels (those with ``with_pubkey``, or all) and
    every one of them is active: both ends must see a link up before a payment can use it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while True:
        with contextlib.suppress(LightningError):
            channels = [
                channel
                for channel in await admin.channels()
                if with_pubkey is None or channel.get("remote_pubkey") == with_pubkey
            ]
            if len(channels) >= at_least and all(c.get("active") for c in channels):
                return
        if loop.time() > deadline:
            raise DevnetError(
                f"lnd {admin.node.name}'s channels are not active again within "
                f"{within_seconds:.0f} s; see its log"
            )
        await asyncio.sleep(0.3)
