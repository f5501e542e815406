"""Where the devnet keeps its state, and which loopback ports each process listens on.

A data dir holds one network for good: ``state.json`` (ports, btcd's RPC login, the mining
address) is written on the first ``up`` and reused by every later one, so the chain, wallets and
channels survive ``down``/``up``. ``devnet.json`` is the connection file other code reads; it
exists only while the network is up. It gives each escrow node the least-privilege macaroon
``up`` bakes for taskhold (``docs/lnd-macaroon.md``), every other node its admin macaroon.

Ports, from ``base_port`` (all on 127.0.0.1, inside a span of 40, or of 100 with extra escrow
nodes)::

    btcd         rpc base+0   p2p base+1
    swap server  http base+5
    bitcoind shim  rpc base+6
    LDK escrow   p2p base+13  (embedded in whichever process runs it)
    escrow       p2p base+10  grpc base+11  rest base+12
    escrow-signer            grpc base+15  rest base+16  (``up --remote-signer``; no p2p)
    employer     p2p base+20  grpc base+21  rest base+22
    worker       p2p base+30  grpc base+31  rest base+32
    swap         p2p base+35  grpc base+36  rest base+37
    escrow-K     p2p base+40+3*(K-2)  grpc +1  rest +2   (K = 2 .. MAX_ESCROW_NODES)

``swap`` is the lnd node of the devnet's swap server (:mod:`taskhold.devnet.swap_server`, test
infrastructure playing Boltz); it came last, so it takes the free ports at the end of the span and
the older nodes keep theirs. The bitcoind shim (:mod:`taskhold.devnet.bitcoind_shim`, bitcoind's
RPC in front of btcd for LDK Node) took a free port inside the span the same way.

``up --remote-signer`` runs the ``escrow`` lnd watch-only, its keys in a separate signer lnd,
``escrow-signer`` (:mod:`taskhold.devnet.remote_signer`); remembered in ``state.json`` like the
rest. Its ports were free in the span; it listens on no p2p port (base+14 stays reserved).

``up --escrow-nodes N`` adds lnd escrow nodes ``escrow-2`` .. ``escrow-N`` beside ``escrow`` (a
node pool). Their ports follow the span, below ``base+100``: the tests space their networks' base
ports 100 apart, so even a pool clashes with no other devnet's ports.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_BASE_PORT",
    "HOST",
    "MAX_ESCROW_NODES",
    "NODE_NAMES",
    "SIGNER",
    "SWAP_SERVER",
    "Layout",
    "NodePaths",
    "State",
    "busy_ports",
    "default_data_dir",
    "escrow_node_names",
    "ports_free",
    "write_private",
]

HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 25100
NODE_NAMES = ("escrow", "employer", "worker", "swap")
SWAP_SERVER = "swap-server"
"""The swap server's process name (pid and log file) and its state dir under the data dir."""
SIGNER = "escrow-signer"
"""The escrow's remote signer: an lnd process and data dir, not one of the network's nodes."""
_PORT_SPAN = 40
_NODE_FIRST_PORT = {"escrow": 10, "employer": 20, "worker": 30, "swap": 35, SIGNER: 14}
_SWAP_SERVER_PORT = 5
_BITCOIND_SHIM_PORT = 6
_LDK_ESCROW_PORT = 13
_EXTRA_ESCROW_FIRST_PORT = 40
MAX_ESCROW_NODES = 20
"""escrow plus escrow-2 .. escrow-20: the last one's ports end at base+96, inside 100."""


def escrow_node_names(count: int) -> tuple[str, ...]:
    """``escrow``, then ``escrow-2`` .. ``escrow-<count>``: the devnet's escrow nodes."""
    return ("escrow", *(f"escrow-{k}" for k in range(2, count + 1)))


def _node_first_port(name: str) -> int:
    if name in _NODE_FIRST_PORT:
        return _NODE_FIRST_PORT[name]
    prefix, _, number = name.partition("-")
    if prefix != "escrow" or not number.isdigit() or not 2 <= int(number) <= MAX_ESCROW_NODES:
        raise ValueError(f"no devnet node is called {name!r}")
    return _EXTRA_ESCROW_FIRST_PORT + 3 * (int(number) - 2)


def default_data_dir() -> Path:
    """``$HOME/.cache/taskhold/devnet``."""
    return Path.home() / ".cache" / "taskhold" / "devnet"


def ports_free(base_port: int, escrow_nodes: int = 1) -> list[int]:
    """The ports of this layout that something else already listens on (empty: all free)."""
    return busy_ports(_all_ports(base_port, escrow_nodes))


def busy_ports(ports: Iterable[int]) -> list[int]:
    """Those of ``ports`` that something already listens on."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError:
                busy.append(port)
    return busy


def _all_ports(base_port: int, escrow_nodes: int = 1) -> list[int]:
    ports = [
        base_port,
        base_port + 1,
        base_port + _SWAP_SERVER_PORT,
        base_port + _BITCOIND_SHIM_PORT,
        base_port + _LDK_ESCROW_PORT,
    ]
    for name in (*NODE_NAMES, SIGNER, *escrow_node_names(escrow_nodes)[1:]):
        first = base_port + _node_first_port(name)
        ports += [first, first + 1, first + 2]
    return ports


@dataclass(frozen=True, slots=True)
class NodePaths:
    """One lnd node's directory, ports and credential files."""

    name: str
    lnd_dir: Path
    p2p_port: int
    grpc_port: int
    rest_port: int

    @property
    def rest_url(self) -> str:
        return f"https://{HOST}:{self.rest_port}"

    @property
    def p2p_address(self) -> str:
        return f"{HOST}:{self.p2p_port}"

    @property
    def tls_cert_path(self) -> Path:
        return self.lnd_dir / "tls.cert"

    @property
    def macaroon_path(self) -> Path:
        """lnd's admin macaroon: the devnet's own setup calls, and the participants' nodes."""
        return self.lnd_dir / "data" / "chain" / "bitcoin" / "regtest" / "admin.macaroon"

    @property
    def escrow_macaroon_path(self) -> Path:
        """The least-privilege macaroon baked for taskhold's escrow backend, beside admin's
        (:mod:`taskhold.lightning.lnd_permissions`)."""
        return self.macaroon_path.with_name("taskhold-escrow.macaroon")


@dataclass(slots=True)
class State:
    """What a data dir remembers between runs."""

    base_port: int
    rpc_user: str
    rpc_pass: str
    mining_address: str = ""
    escrow_backend: str = "lnd"
    """``lnd``, or ``ldk`` once ``up --escrow ldk`` provisioned the embedded LDK escrow."""
    escrow_nodes: int = 1
    """How many lnd escrow nodes ``up --escrow-nodes`` asked for: escrow, escrow-2, ..."""
    remote_signer: bool = False
    """``up --remote-signer``: the escrow lnd is watch-only, its keys in ``escrow-signer``."""

    @classmethod
    def new(cls, base_port: int) -> State:
        return cls(base_port=base_port, rpc_user="taskhold", rpc_pass=secrets.token_hex(16))


class Layout:
    """Paths and ports of one devnet data dir."""

    def __init__(
        self,
        data_dir: str | Path,
        base_port: int = DEFAULT_BASE_PORT,
        escrow_nodes: int = 1,
        *,
        remote_signer: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.base_port = base_port
        self.escrow_nodes = escrow_nodes
        self.remote_signer = remote_signer

    @classmethod
    def of(cls, data_dir: str | Path, state: State) -> Layout:
        """The layout ``state`` describes (its ports, escrow nodes and signer)."""
        return cls(data_dir, state.base_port, state.escrow_nodes, remote_signer=state.remote_signer)

    @property
    def escrow_node_names(self) -> tuple[str, ...]:
        return escrow_node_names(self.escrow_nodes)

    @property
    def node_names(self) -> tuple[str, ...]:
        """Every lnd node: the four of every devnet, then the extra escrow nodes."""
        return (*NODE_NAMES, *self.escrow_node_names[1:])

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.json"

    @property
    def connection_path(self) -> Path:
        return self.data_dir / "devnet.json"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.data_dir / "pids"

    def log_path(self, process: str) -> Path:
        return self.logs_dir / f"{process}.log"

    def pid_path(self, process: str) -> Path:
        return self.pids_dir / f"{process}.pid"

    @property
    def daemon_names(self) -> tuple[str, ...]:
        """btcd, the lnd nodes and the escrow's signer: the network itself, rebuilt together."""
        return ("btcd", *self.node_names, *self.signer_names)

    @property
    def signer_names(self) -> tuple[str, ...]:
        """``(SIGNER,)`` under ``--remote-signer``, else empty."""
        return (SIGNER,) if self.remote_signer else ()

    @property
    def signer(self) -> NodePaths:
        """The escrow's remote signer lnd (whether or not this devnet runs one)."""
        return self.node(SIGNER)

    @property
    def process_names(self) -> tuple[str, ...]:
        """Every managed process: the daemons, then the swap server that runs on them."""
        return (*self.daemon_names, SWAP_SERVER)

    # -- btcd --------------------------------------------------------------------------------

    @property
    def btcd_dir(self) -> Path:
        return self.data_dir / "btcd"

    @property
    def btcd_rpc_port(self) -> int:
        return self.base_port

    @property
    def btcd_p2p_port(self) -> int:
        return self.base_port + 1

    @property
    def btcd_rpc_cert(self) -> Path:
        return self.btcd_dir / "rpc.cert"

    @property
    def btcd_rpc_key(self) -> Path:
        return self.btcd_dir / "rpc.key"

    @property
    def btcd_rpc_url(self) -> str:
        return f"https://{HOST}:{self.btcd_rpc_port}"

    # -- lnd ---------------------------------------------------------------------------------

    def node(self, name: str) -> NodePaths:
        first = self.base_port + _node_first_port(name)
        return NodePaths(
            name=name,
            lnd_dir=self.data_dir / name,
            p2p_port=first,
            grpc_port=first + 1,
            rest_port=first + 2,
        )

    # -- swap server -------------------------------------------------------------------------

    @property
    def swap_server_port(self) -> int:
        return self.base_port + _SWAP_SERVER_PORT

    @property
    def swap_server_url(self) -> str:
        """Boltz API v2's base URL on the devnet."""
        return f"http://{HOST}:{self.swap_server_port}/v2"

    @property
    def swap_server_ws_url(self) -> str:
        return f"ws://{HOST}:{self.swap_server_port}/v2/ws"

    @property
    def swap_server_dir(self) -> Path:
        """The swap server's records (its per-swap keys); they die with the chain."""
        return self.data_dir / SWAP_SERVER

    # -- bitcoind shim ------------------------------------------------------------------------

    @property
    def bitcoind_shim_port(self) -> int:
        """Where the bitcoind-RPC shim in front of btcd listens (LDK Node's chain source)."""
        return self.base_port + _BITCOIND_SHIM_PORT

    # -- the LDK escrow ----------------------------------------------------------------------

    @property
    def ldk_escrow_port(self) -> int:
        """The embedded LDK escrow's p2p port, while a process embeds it."""
        return self.base_port + _LDK_ESCROW_PORT

    # -- state and connection file -----------------------------------------------------------

    def load_state(self) -> State | None:
        if not self.state_path.exists():
            return None
        return State(**json.loads(self.state_path.read_text()))

    def save_state(self, state: State) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _write_private(self.state_path, asdict(state))

    def write_connection_file(
        self, state: State, pubkeys: dict[str, str], *, hold_expiry_delta: int
    ) -> Path:
        """Write ``devnet.json``: per node REST URL, TLS cert, macaroon path and pubkey; the
        escrow nodes' names; btcd's RPC login; the swap server's Boltz API URLs."""
        document = {
            "network": "regtest",
            "hold_expiry_delta": hold_expiry_delta,
            "data_dir": str(self.data_dir),
            "nodes": {name: self.node_entry(name, pubkeys[name]) for name in self.node_names},
            "escrow_nodes": list(self.escrow_node_names),
            "btcd": {
                "rpc_url": self.btcd_rpc_url,
                "rpc_user": state.rpc_user,
                "rpc_pass": state.rpc_pass,
                "rpc_cert_path": str(self.btcd_rpc_cert),
                "mining_address": state.mining_address,
            },
            "swap_server": {"url": self.swap_server_url, "ws_url": self.swap_server_ws_url},
            "remote_signer": self.signer_entry() if self.remote_signer else None,
        }
        _write_private(self.connection_path, document)
        return self.connection_path

    def node_entry(self, name: str, pubkey: str) -> dict[str, str]:
        """One node's connection in ``devnet.json`` (what ``load_node_connection`` reads).

        An escrow node's ``macaroon_path`` is its baked least-privilege macaroon, so taskhold
        runs with that by default; ``admin_macaroon_path`` is there for an explicit choice."""
        node = self.node(name)
        escrow = name in self.escrow_node_names
        return {
            "rest_url": node.rest_url,
            "tls_cert_path": str(node.tls_cert_path),
            "macaroon_path": str(node.escrow_macaroon_path if escrow else node.macaroon_path),
            "admin_macaroon_path": str(node.macaroon_path),
            "pubkey": pubkey,
            "p2p_address": node.p2p_address,
            "grpc_address": f"{HOST}:{node.grpc_port}",
            "lnd_dir": str(node.lnd_dir),
        }

    def signer_entry(self) -> dict[str, str]:
        """The escrow's remote signer in ``devnet.json``: which node it signs for and how the
        devnet's tooling reaches it (admin macaroon; taskhold itself never talks to it)."""
        signer = self.signer
        return {
            "name": SIGNER,
            "signs_for": "escrow",
            "rest_url": signer.rest_url,
            "grpc_address": f"{HOST}:{signer.grpc_port}",
            "tls_cert_path": str(signer.tls_cert_path),
            "admin_macaroon_path": str(signer.macaroon_path),
            "lnd_dir": str(signer.lnd_dir),
        }

    def update_connection_file(self, sections: dict[str, Any]) -> Path:
        """Add or replace top-level sections of ``devnet.json`` (the LDK escrow's)."""
        document = json.loads(self.connection_path.read_text())
        document.update(sections)
        _write_private(self.connection_path, document)
        return self.connection_path


def _write_private(path: Path, document: dict[str, Any]) -> None:
    """Write JSON readable by the owner only, atomically (it holds btcd's RPC password)."""
    write_private(path, (json.dumps(document, indent=2) + "\n").encode())


def write_private(path: Path, content: bytes) -> None:
    """Write ``content`` readable by the owner only, atomically: macaroons, passwords, logins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    temporary.replace(path)
