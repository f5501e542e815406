"""The regtest Lightning network for tests: started once per test run, shared by every user.

The devnet tests (``tests/devnet/conftest.py``) and the lnd harness of the contract suite
(``tests/lightning/test_contract.py``) both call :func:`get_devnet`. The first call starts the
network through the real CLI (``python -m taskhold.devnet.cli up``, in a subprocess, so it works
from inside a running event loop too); it is stopped when the test process exits.

- ``TASKHOLD_DEVNET_DIR`` names a data dir to use instead of a temporary one. A devnet already
  running there is reused, and one started there is left running at the end, so the next run
  starts in a second (stop it with ``taskhold devnet down --data-dir ...``).
- The shared devnet runs the escrow lnd **watch-only with a remote signer** (``up
  --remote-signer``, ``docs/remote-signer.md``), so every devnet test runs on it at no extra
  cost; ``TASKHOLD_DEVNET_REMOTE_SIGNER=0`` starts it without one. The pool devnet below keeps
  the escrow's keys in the escrow lnd, so its tests show a devnet without a signer still works.
- ``TASKHOLD_BIN_DIR`` names the lnd/btcd binaries (``scripts/test`` sets it); otherwise the
  ``scripts/build-lnd`` cache is used. Missing binaries skip the devnet tests locally and fail
  them under CI (``CI=true``).

:func:`get_pool_devnet` is a second network for the node pool's tests, with two lnd escrow nodes
(``escrow``, ``escrow-2``: ``up --escrow-nodes 2``), started on first use and stopped at exit;
``TASKHOLD_POOL_DEVNET_DIR`` reuses one like ``TASKHOLD_DEVNET_DIR`` does. It is separate so the
shared devnet's tests keep counting the channels they know.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from taskhold.devnet import control
from taskhold.devnet.binaries import find_bin_dir
from taskhold.devnet.btcd import BtcdRpc
from taskhold.devnet.layout import Layout, ports_free
from taskhold.devnet.ldk_escrow import wait_channels_usable, wait_ldk_synced
from taskhold.devnet.swap_server.btcd_chain import BtcdSwapChain
from taskhold.lightning.base import LightningError
from taskhold.lightning.ldk import LdkBackend
from taskhold.lightning.ldk_module import LdkModuleMissing, load_ldk_node
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_wallet import LndWallet
from taskhold.services import ldk_config
from taskhold.settings import Settings

__all__ = [
    "DevnetHandle",
    "cancel_held_invoices",
    "get_devnet",
    "get_ldk_devnet",
    "get_pool_devnet",
    "open_devnet_ldk_escrow",
    "require_ldk_module",
]

_FIRST_TEST_BASE_PORT = 26100


@dataclass(frozen=True)
class DevnetHandle:
    """A running devnet: its data dir and connection file, and clients for its nodes."""

    data_dir: Path
    connection_file: Path
    up_seconds: float

    def backend(self, node: str = "escrow", **options: float) -> LndBackend:
        """A new :class:`LndBackend` for ``node``; close it when done."""
        return LndBackend.from_connection_file(self.connection_file, node, **options)

    def wallet(self, node: str) -> LndWallet:
        """A new :class:`LndWallet` for ``node`` with its admin macaroon (an escrow node's own
        cannot do wallet calls); close it when done."""
        return LndWallet.from_connection_file(self.connection_file, node, admin=True)

    @property
    def swap_server_url(self) -> str:
        """The swap server's Boltz API v2 base URL (``.../v2``), from the connection file."""
        return str(json.loads(self.connection_file.read_text())["swap_server"]["url"])

    def swap_chain(self) -> BtcdSwapChain:
        """A new :class:`BtcdSwapChain` (btcd and the swap node's wallet); ``aclose`` it."""
        layout = Layout(self.data_dir)
        state = layout.load_state()
        assert state is not None, f"no state.json in {self.data_dir}"
        return BtcdSwapChain.for_devnet(Layout(self.data_dir, state.base_port), state)

    def btcd(self) -> BtcdRpc:
        """A client of the devnet's btcd (no connection is held open)."""
        layout = Layout(self.data_dir)
        state = layout.load_state()
        assert state is not None, f"no state.json in {self.data_dir}"
        return BtcdRpc(Layout(self.data_dir, state.base_port), state)

    def pubkey(self, node: str) -> str:
        return str(json.loads(self.connection_file.read_text())["nodes"][node]["pubkey"])

    async def mine(self, blocks: int) -> None:
        """Mine one block at a time; every node has processed each before the next."""
        await control.mine(self.data_dir, blocks)

    async def restart_node(self, node: str, *, kill: bool = False, down_seconds: float = 0) -> None:
        """Stop ``node`` (SIGKILL with ``kill``) and start it again; back once its channels are."""
        await control.restart_node(
            self.data_dir, node, bin_dir=find_bin_dir(), kill=kill, down_seconds=down_seconds
        )

    async def stop_node(self, node: str, *, kill: bool = False) -> None:
        """Stop ``node`` (SIGKILL with ``kill``) and leave it down until :meth:`start_node`."""
        await control.stop_node(self.data_dir, node, kill=kill)

    async def start_node(self, node: str) -> None:
        """Start a stopped ``node`` again; back once its channels are active."""
        await control.start_node(self.data_dir, node, bin_dir=find_bin_dir())

    async def add_liquidity(
        self, node: str, *, inbound_sat: int | None = None, outbound_sat: int | None = None
    ) -> str:
        """Open one more channel to (inbound) or from (outbound) escrow node ``node``, active
        once this returns; its channel point."""
        opened = await control.add_liquidity(
            self.data_dir, node, inbound_sat=inbound_sat, outbound_sat=outbound_sat
        )
        return str(opened["channel_point"])

    @property
    def escrow_nodes(self) -> list[str]:
        """``devnet.json``'s ``escrow_nodes``: escrow, escrow-2, ..."""
        return list(json.loads(self.connection_file.read_text())["escrow_nodes"])


_current: DevnetHandle | None = None
_pool: DevnetHandle | None = None
_failure: str | None = None
_ldk_ready = False


def devnet_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``taskhold devnet ARGS`` as a subprocess; its answer, whatever the exit status."""
    command = [sys.executable, "-m", "taskhold.devnet.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def private_devnet_up(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``devnet up`` of a test's own devnet in ``data_dir``, on a block of free ports (the
    caller brings it down)."""
    base_port = _free_base_port(2)
    return devnet_cli(
        "up",
        "--data-dir",
        str(data_dir),
        "--base-port",
        str(base_port),
        "--bin-dir",
        str(_bin_dir()),
        *extra,
    )


def _free_base_port(escrow_nodes: int = 1) -> int:
    for base_port in range(_FIRST_TEST_BASE_PORT, _FIRST_TEST_BASE_PORT + 2000, 100):
        if not ports_free(base_port, escrow_nodes):
            return base_port
    raise RuntimeError("no free block of loopback ports for a devnet")


def _stop_and_remove(data_dir: Path) -> None:
    devnet_cli("down", "--data-dir", str(data_dir))
    shutil.rmtree(data_dir, ignore_errors=True)


def _bin_dir() -> Path:
    """The lnd/btcd binaries. Missing, the devnet tests fail where they must run (under CI, or
    when ``TASKHOLD_BIN_DIR`` names them, as ``scripts/test`` does) and skip on a developer's
    machine that never ran ``scripts/build-lnd``: the only reason they skip."""
    try:
        return find_bin_dir()
    except control.DevnetError as exc:
        if os.environ.get("CI") == "true" or os.environ.get("TASKHOLD_BIN_DIR"):
            pytest.fail(f"devnet binaries missing where they are required: {exc}")
        pytest.skip(f"devnet binaries missing: {exc}")


def get_devnet() -> DevnetHandle:
    """The test run's devnet, started on first use."""
    global _current, _failure
    if _current is not None:
        return _current
    if _failure is not None:
        pytest.fail(_failure, pytrace=False)  # fail fast: one start attempt per test run
    bin_dir = _bin_dir()
    chosen = os.environ.get("TASKHOLD_DEVNET_DIR")
    data_dir = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="taskhold-devnet-"))
    options = ["--data-dir", str(data_dir), "--bin-dir", str(bin_dir)]
    if not (data_dir / "state.json").exists():
        options += ["--base-port", str(_free_base_port())]
    signer = os.environ.get("TASKHOLD_DEVNET_REMOTE_SIGNER", "1") != "0"
    options.append("--remote-signer" if signer else "--no-remote-signer")
    started = time.monotonic()
    if not chosen:
        atexit.register(_stop_and_remove, data_dir)
    result = devnet_cli("up", *options)
    if result.returncode != 0:
        _failure = f"taskhold devnet up failed (logs in {data_dir / 'logs'}):\n" + "\n".join(
            result.stderr.splitlines()[-25:]
        )
        pytest.fail(_failure, pytrace=False)
    _current = DevnetHandle(
        data_dir=data_dir,
        connection_file=data_dir / "devnet.json",
        up_seconds=time.monotonic() - started,
    )
    return _current


def get_pool_devnet(escrow_nodes: int = 2) -> DevnetHandle:
    """The test run's pool devnet (``up --escrow-nodes``), started on first use; see the module
    docstring."""
    global _pool
    if _pool is not None:
        return _pool
    bin_dir = _bin_dir()
    chosen = os.environ.get("TASKHOLD_POOL_DEVNET_DIR")
    data_dir = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="taskhold-pool-"))
    options = ["--data-dir", str(data_dir), "--bin-dir", str(bin_dir)]
    options += ["--escrow-nodes", str(escrow_nodes)]
    if not (data_dir / "state.json").exists():
        options += ["--base-port", str(_free_base_port(escrow_nodes))]
    started = time.monotonic()
    if not chosen:
        atexit.register(_stop_and_remove, data_dir)
    result = devnet_cli("up", *options)
    if result.returncode != 0:
        pytest.fail(
            f"taskhold devnet up --escrow-nodes {escrow_nodes} failed (logs in "
            f"{data_dir / 'logs'}):\n" + "\n".join(result.stderr.splitlines()[-25:]),
            pytrace=False,
        )
    _pool = DevnetHandle(
        data_dir=data_dir,
        connection_file=data_dir / "devnet.json",
        up_seconds=time.monotonic() - started,
    )
    return _pool


def release_pool_devnet() -> None:
    """Stop the run's pool devnet now (a later :func:`get_pool_devnet` starts another), unless
    it is one the caller keeps (``TASKHOLD_POOL_DEVNET_DIR``)."""
    global _pool
    if _pool is None or os.environ.get("TASKHOLD_POOL_DEVNET_DIR"):
        return
    data_dir, _pool = _pool.data_dir, None
    _stop_and_remove(data_dir)


def get_ldk_devnet() -> DevnetHandle:
    """The test run's devnet with the embedded LDK escrow provisioned (once) beside the lnd
    escrow; the lnd escrow stays the default. Needs ``TASKHOLD_LDK_DIR`` (``scripts/build-ldk``):
    missing, the LDK tests skip locally and fail under CI."""
    global _ldk_ready, _failure
    devnet = get_devnet()
    if _ldk_ready:
        return devnet
    require_ldk_module()
    code = (
        "import asyncio, sys\n"
        "from taskhold.devnet import control\n"
        "asyncio.run(control.add_ldk_escrow(sys.argv[1], print))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(devnet.data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        _failure = "adding the LDK escrow to the devnet failed:\n" + "\n".join(
            (result.stdout + result.stderr).splitlines()[-25:]
        )
        pytest.fail(_failure, pytrace=False)
    _ldk_ready = True
    return devnet


async def open_devnet_ldk_escrow(devnet: DevnetHandle, **options: float) -> LdkBackend:
    """Start the devnet's LDK escrow in this process, as taskhold does with ``lightning=ldk``,
    and return once it is at btcd's tip with both channels usable; close it when done."""
    settings = Settings(lightning="ldk", lnd_connection_file=devnet.connection_file)
    backend = await LdkBackend.open(ldk_config(settings, None), **options)
    try:
        await wait_ldk_synced(backend, devnet.btcd())
        await wait_channels_usable(backend, {devnet.pubkey("employer"), devnet.pubkey("worker")})
    except BaseException:
        await backend.close()
        raise
    return backend


async def cancel_held_invoices(escrow: LdkBackend) -> None:
    """Cancel every hold invoice a test left OPEN or ACCEPTED on the shared LDK escrow: a held
    HTLC would fail back by itself near its expiry and move the payer's balance under a later
    test that mines. A closed backend (the test closed it itself) has nothing to cancel."""
    if escrow._closed:
        return
    held = await asyncio.to_thread(escrow._records.pending)
    for record in held:
        with contextlib.suppress(LightningError):
            await escrow.cancel_invoice(record.payment_hash)
    if held:  # the next test's "before" balance must not include a refund still on its way
        await escrow._channels_quiet()


def require_ldk_module() -> ModuleType:
    """LDK Node's module (``TASKHOLD_LDK_DIR``). Missing, the LDK tests fail where the module
    must exist (``scripts/test`` sets ``TASKHOLD_REQUIRE_LDK=1``, and under CI) and skip on a
    developer's machine that never ran ``scripts/build-ldk``: the only reason they skip."""
    try:
        return load_ldk_node()
    except LdkModuleMissing as exc:
        if os.environ.get("TASKHOLD_REQUIRE_LDK") == "1" or os.environ.get("CI") == "true":
            pytest.fail(f"LDK Node module missing where it is required: {exc}")
        pytest.skip(f"LDK Node module missing (run scripts/build-ldk): {exc}")


async def settled_balance(wallet: LndWallet) -> int:
    """The local channel balance once it has stopped moving (lnd updates it a moment late)."""
    previous = -1
    for _ in range(50):
        balance = await wallet.channel_balance()
        if balance.local_msat == previous and balance.unsettled_local_msat == 0:
            return balance.local_msat
        previous = balance.local_msat
        await asyncio.sleep(0.2)
    return previous


async def local_balance_reaches(wallet: LndWallet, expected_msat: int) -> int:
    """The local balance (HTLCs in flight excluded) once it equals ``expected_msat``, or the
    last value read after 10 s: lnd updates it a moment after an HTLC was added or failed."""
    for _ in range(50):
        balance = (await wallet.channel_balance()).local_msat
        if balance == expected_msat:
            return balance
        await asyncio.sleep(0.2)
    return balance
