"""``taskhold devnet up|down|status|mine N|restart NODE|stop-node NODE|start-node NODE|
add-liquidity``: the regtest network from the shell.

Mounted by :mod:`taskhold.cli` with ``app.add_typer(devnet_app, name="devnet")``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from taskhold.devnet import control
from taskhold.devnet.binaries import find_bin_dir
from taskhold.devnet.btcd import BtcdRpcError
from taskhold.devnet.control import DevnetError
from taskhold.devnet.layout import DEFAULT_BASE_PORT, MAX_ESCROW_NODES, default_data_dir
from taskhold.lightning.base import LightningError
from taskhold.lightning.ldk_module import LdkModuleMissing

__all__ = ["devnet_app"]

devnet_app = typer.Typer(
    help="A local regtest Lightning network: btcd + lnd nodes escrow, employer, worker, swap, "
    "and a Boltz-API swap server (test infrastructure).",
    no_args_is_help=True,
)
_console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="State of the network (default: ~/.cache/taskhold/devnet).",
        show_default=False,
    ),
]


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else default_data_dir()


def _fail(exc: Exception) -> typer.Exit:
    _console.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(1)


@devnet_app.command()
def up(
    data_dir: DataDir = None,
    bin_dir: Annotated[
        Path | None,
        typer.Option(help="lnd/btcd binaries (default: the scripts/build-lnd cache)."),
    ] = None,
    base_port: Annotated[
        int | None, typer.Option(help=f"First of the loopback ports (default {DEFAULT_BASE_PORT}).")
    ] = None,
    escrow: Annotated[
        str | None,
        typer.Option(
            help="The escrow node: lnd, or ldk (an embedded LDK node; needs scripts/build-ldk"
            " and TASKHOLD_LDK_DIR). Remembered by later ups; default: as before, else lnd."
        ),
    ] = None,
    escrow_nodes: Annotated[
        int | None,
        typer.Option(
            "--escrow-nodes",
            help=f"How many lnd escrow nodes (1 to {MAX_ESCROW_NODES}): escrow, escrow-2, ... "
            "Remembered by later ups; a larger N on a running devnet adds the missing nodes. "
            "Default: as before, else 1.",
            show_default=False,
        ),
    ] = None,
    remote_signer: Annotated[
        bool | None,
        typer.Option(
            "--remote-signer/--no-remote-signer",
            help="Run the escrow lnd watch-only, every key in a separate signer lnd "
            "(escrow-signer) it signs through over gRPC (docs/remote-signer.md). Remembered by "
            "later ups; a running devnet cannot switch. Default: as before, else off.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start btcd, four lnd nodes and the swap server, fund the nodes, open channels; a no-op
    if already up (a swap server that died is started again)."""
    started = time.monotonic()
    try:
        control.check_escrow_nodes(escrow_nodes)
        binaries = bin_dir if bin_dir is not None else find_bin_dir()
        with _console.status("starting devnet") as spinner:

            def progress(step: str) -> None:
                _console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {step}")
                spinner.update(step)

            connection = asyncio.run(
                control.up(
                    _data_dir(data_dir),
                    bin_dir=binaries,
                    progress=progress,
                    base_port=base_port,
                    escrow=escrow,
                    escrow_nodes=escrow_nodes,
                    remote_signer=remote_signer,
                )
            )
    except (DevnetError, BtcdRpcError, LightningError, LdkModuleMissing) as exc:
        raise _fail(exc) from None
    _console.print(f"[green]devnet up[/green] in {time.monotonic() - started:.1f}s")
    typer.echo(str(connection))


@devnet_app.command()
def down(data_dir: DataDir = None) -> None:
    """Stop every process of the devnet; the next `up` builds a fresh network."""
    stopped = asyncio.run(control.down(_data_dir(data_dir)))
    _console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@devnet_app.command()
def status(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """What runs, at which height, with which channels and balances."""
    report = asyncio.run(control.status(_data_dir(data_dir)))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_status(report)
    if not report["running"]:
        raise typer.Exit(3)


@devnet_app.command()
def mine(
    blocks: Annotated[int, typer.Argument(min=1, help="How many blocks.")],
    data_dir: DataDir = None,
) -> None:
    """Mine BLOCKS blocks and wait until every node has seen them."""
    try:
        hashes = asyncio.run(control.mine(_data_dir(data_dir), blocks))
    except (DevnetError, BtcdRpcError, LightningError) as exc:
        raise _fail(exc) from None
    _console.print(f"mined {len(hashes)} block(s); tip {hashes[-1]}")


@devnet_app.command()
def restart(
    node: Annotated[
        str, typer.Argument(help="escrow, employer, worker, swap, escrow-K or escrow-signer.")
    ],
    data_dir: DataDir = None,
    kill: Annotated[
        bool, typer.Option("--kill", help="SIGKILL instead of a clean stop (a crash).")
    ] = False,
    bin_dir: Annotated[
        Path | None,
        typer.Option(help="lnd/btcd binaries (default: the scripts/build-lnd cache)."),
    ] = None,
) -> None:
    """Stop one lnd node and start it again on its data; back once synced, channels active."""
    started = time.monotonic()
    try:
        binaries = bin_dir if bin_dir is not None else find_bin_dir()
        asyncio.run(control.restart_node(_data_dir(data_dir), node, bin_dir=binaries, kill=kill))
    except (DevnetError, BtcdRpcError, LightningError) as exc:
        raise _fail(exc) from None
    _console.print(f"{node} restarted in {time.monotonic() - started:.1f}s")


BinDir = Annotated[
    Path | None,
    typer.Option(help="lnd/btcd binaries (default: the scripts/build-lnd cache)."),
]


@devnet_app.command("stop-node")
def stop_node(
    node: Annotated[
        str, typer.Argument(help="escrow, employer, worker, swap, escrow-K or escrow-signer.")
    ],
    data_dir: DataDir = None,
    kill: Annotated[
        bool, typer.Option("--kill", help="SIGKILL instead of a clean stop (a crash).")
    ] = False,
) -> None:
    """Stop one lnd node and leave it down (`start-node` brings it back; `up` would rebuild
    the whole network while a node is down)."""
    try:
        was_running = asyncio.run(control.stop_node(_data_dir(data_dir), node, kill=kill))
    except (DevnetError, BtcdRpcError, LightningError) as exc:
        raise _fail(exc) from None
    _console.print(f"{node} stopped" if was_running else f"{node} was not running")


@devnet_app.command("start-node")
def start_node(
    node: Annotated[
        str, typer.Argument(help="escrow, employer, worker, swap, escrow-K or escrow-signer.")
    ],
    data_dir: DataDir = None,
    bin_dir: BinDir = None,
) -> None:
    """Start a stopped lnd node on its data; back once synced, channels active."""
    started = time.monotonic()
    try:
        binaries = bin_dir if bin_dir is not None else find_bin_dir()
        asyncio.run(control.start_node(_data_dir(data_dir), node, bin_dir=binaries))
    except (DevnetError, BtcdRpcError, LightningError) as exc:
        raise _fail(exc) from None
    _console.print(f"{node} started in {time.monotonic() - started:.1f}s")


@devnet_app.command("add-liquidity")
def add_liquidity(
    node: Annotated[str, typer.Option("--node", help="The escrow node: escrow or escrow-K.")],
    inbound_sat: Annotated[
        int | None,
        typer.Option(
            "--inbound-sat", help="The employer opens a channel of this size to the node."
        ),
    ] = None,
    outbound_sat: Annotated[
        int | None,
        typer.Option("--outbound-sat", help="The node opens a channel of this size to the worker."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Open one channel that gives an escrow node more inbound or outbound liquidity, mine it
    in and wait until it is active; print it as one JSON line (channel_point). Each call opens
    one more channel."""
    try:
        opened = asyncio.run(
            control.add_liquidity(
                _data_dir(data_dir), node, inbound_sat=inbound_sat, outbound_sat=outbound_sat
            )
        )
    except (DevnetError, BtcdRpcError, LightningError) as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(opened, separators=(",", ":")))


def _print_status(report: dict[str, object]) -> None:
    state = "[green]running[/green]" if report["running"] else "[yellow]not running[/yellow]"
    _console.print(f"devnet {state} in {report['data_dir']}, height {report['block_height']}")
    table = Table("process", "pid", "synced", "height", "channels", "local msat", "remote msat")
    processes = report["processes"]
    nodes = report["nodes"]
    assert isinstance(processes, dict) and isinstance(nodes, dict)
    for name, process in processes.items():
        node = nodes.get(name, {})
        table.add_row(
            name,
            str(process["pid"] or "-"),
            str(node.get("synced_to_chain", "")),
            str(node.get("block_height", "")),
            str(node.get("active_channels", "")),
            str(node.get("local_balance_msat", "")),
            str(node.get("remote_balance_msat", "")),
        )
    _console.print(table)
    swap_server = report["swap_server"]
    assert isinstance(swap_server, dict)
    answers = swap_server["block_height"] is not None
    _console.print(
        f"swap server {swap_server['url']}: "
        + (f"answers, height {swap_server['block_height']}" if answers else "not answering")
    )
    ldk = report.get("ldk_escrow")
    if isinstance(ldk, dict):
        shim = "running" if ldk["bitcoind_shim"]["alive"] else "not running"
        _console.print(f"escrow: embedded LDK node {ldk['pubkey']}; bitcoind shim {shim}")
    escrow_nodes = report.get("escrow_nodes")
    if isinstance(escrow_nodes, list) and len(escrow_nodes) > 1:
        _console.print(f"escrow nodes: {', '.join(escrow_nodes)}")
    if report.get("remote_signer"):
        _console.print("escrow: watch-only lnd; its keys are in escrow-signer")
    if report["connection_file"]:
        _console.print(f"connection file: {report['connection_file']}")


if __name__ == "__main__":  # python -m taskhold.devnet.cli (used by the test fixture)
    devnet_app()
