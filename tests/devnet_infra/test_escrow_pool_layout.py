"""The devnet's escrow node pool without a network: ports, the state file, devnet.json, and the
CLI refusing bad input before it starts or touches anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskhold.devnet import bootstrap
from taskhold.devnet.cli import devnet_app
from taskhold.devnet.layout import (
    _LDK_ESCROW_PORT,
    MAX_ESCROW_NODES,
    NODE_NAMES,
    Layout,
    State,
    _all_ports,
)
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_rest import load_node_connection
from taskhold.services import _lnd_backend
from taskhold.settings import Settings

BASE = 40_000


def test_extra_escrow_ports_clash_with_nothing_and_stay_below_the_next_base() -> None:
    ports = _all_ports(BASE, MAX_ESCROW_NODES)
    assert len(ports) == len(set(ports)), "two processes of one devnet share a port"
    assert all(BASE <= port < BASE + 100 for port in ports)
    assert BASE + _LDK_ESCROW_PORT in ports and BASE + 6 in ports  # LDK escrow, bitcoind shim
    layout = Layout("/nonexistent", BASE, 2)
    escrow_2 = layout.node("escrow-2")
    assert (escrow_2.p2p_port, escrow_2.grpc_port, escrow_2.rest_port) == (
        BASE + 40,
        BASE + 41,
        BASE + 42,
    )
    assert escrow_2.lnd_dir == Path("/nonexistent/escrow-2")
    assert layout.node("escrow").p2p_port == BASE + 10  # the first escrow keeps its ports


@pytest.mark.parametrize("name", ["escrow-1", "escrow-0", f"escrow-{MAX_ESCROW_NODES + 1}", "x-2"])
def test_a_node_outside_the_pool_has_no_ports(name: str) -> None:
    with pytest.raises(ValueError, match="no devnet node"):
        Layout("/nonexistent", BASE, MAX_ESCROW_NODES).node(name)


def test_node_names_keep_the_four_nodes_first() -> None:
    assert Layout("/x", BASE).node_names == NODE_NAMES
    assert Layout("/x", BASE, 3).node_names == (*NODE_NAMES, "escrow-2", "escrow-3")
    assert Layout("/x", BASE, 3).daemon_names == ("btcd", *NODE_NAMES, "escrow-2", "escrow-3")


def test_the_state_file_remembers_the_pool_and_reads_an_older_one_as_one_node(
    tmp_path: Path,
) -> None:
    layout = Layout(tmp_path, BASE)
    state = State.new(BASE)
    state.escrow_nodes = 3
    layout.save_state(state)
    loaded = layout.load_state()
    assert loaded is not None and loaded.escrow_nodes == 3
    older = json.loads(layout.state_path.read_text())
    del older["escrow_nodes"]
    layout.state_path.write_text(json.dumps(older))
    loaded = layout.load_state()
    assert loaded is not None and loaded.escrow_nodes == 1


def test_devnet_json_lists_every_escrow_node_and_each_loads_as_a_connection(
    tmp_path: Path,
) -> None:
    layout = Layout(tmp_path, BASE, 2)
    names = layout.node_names
    path = layout.write_connection_file(
        State.new(BASE),
        {name: f"02{index:064x}" for index, name in enumerate(names)},
        hold_expiry_delta=18,
    )
    document = json.loads(path.read_text())
    assert document["escrow_nodes"] == ["escrow", "escrow-2"]
    assert set(document["nodes"]) == set(names)
    connection = load_node_connection(path, "escrow-2")
    assert connection.rest_url == f"https://127.0.0.1:{BASE + 42}"
    assert load_node_connection(path, "escrow").rest_url == f"https://127.0.0.1:{BASE + 12}"


def test_extra_escrows_get_the_escrows_coins_and_channels() -> None:
    names = Layout("/x", BASE, 3).node_names
    assert bootstrap.channels_of(NODE_NAMES) == bootstrap.CHANNELS
    assert bootstrap.channels_of(names) == (
        *bootstrap.CHANNELS,
        ("employer", "escrow-2"),
        ("escrow-2", "worker"),
        ("employer", "escrow-3"),
        ("escrow-3", "worker"),
    )
    funding = bootstrap.funding_of(names)
    assert funding["escrow-2"] == funding["escrow-3"] == bootstrap.ONCHAIN_FUNDING_SAT["escrow"]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(devnet_app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize("count", ["0", "-1", str(MAX_ESCROW_NODES + 1)])
def test_up_refuses_an_escrow_node_count_outside_the_pool_before_starting(
    tmp_path: Path, count: str
) -> None:
    data_dir = tmp_path / "devnet"
    code, output = _run("up", "--data-dir", str(data_dir), "--escrow-nodes", count)
    assert code == 1
    assert f"--escrow-nodes must be between 1 and {MAX_ESCROW_NODES}, not {count}" in output
    assert not data_dir.exists()


def _devnet_dir(tmp_path: Path, escrow_nodes: int) -> Path:
    """A data dir whose state says ``escrow_nodes``, with nothing running."""
    state = State.new(BASE)
    state.escrow_nodes = escrow_nodes
    Layout(tmp_path, BASE).save_state(state)
    return tmp_path


@pytest.mark.parametrize("command", ["stop-node", "start-node", "restart"])
def test_node_commands_refuse_a_node_the_devnet_does_not_have(tmp_path: Path, command: str) -> None:
    data_dir = _devnet_dir(tmp_path, 2)
    code, output = _run(command, "escrow-3", "--data-dir", str(data_dir))
    assert code == 1
    assert "unknown node 'escrow-3'" in output and "escrow-2" in output


def test_stop_node_on_a_stopped_devnet_says_so(tmp_path: Path) -> None:
    data_dir = _devnet_dir(tmp_path, 2)
    code, output = _run("stop-node", "escrow-2", "--data-dir", str(data_dir))
    assert code == 1
    assert "no devnet running in" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node", "escrow-2"], "give exactly one of --inbound-sat and --outbound-sat"),
        (
            ["--node", "escrow-2", "--inbound-sat", "50000", "--outbound-sat", "50000"],
            "give exactly one of --inbound-sat and --outbound-sat",
        ),
        (["--node", "escrow-2", "--inbound-sat", "19999"], "a channel holds 20,000 to"),
        (["--node", "escrow-2", "--outbound-sat", "16777216"], "not 16,777,216"),
        (["--node", "employer", "--inbound-sat", "50000"], "is for the escrow nodes"),
        (["--node", "escrow-3", "--inbound-sat", "50000"], "not 'escrow-3'"),
        (["--node", "escrow-2", "--inbound-sat", "50000"], "no devnet running in"),
    ],
)
def test_add_liquidity_refuses_bad_input_clearly(
    tmp_path: Path, args: list[str], message: str
) -> None:
    data_dir = _devnet_dir(tmp_path, 2)
    code, output = _run("add-liquidity", *args, "--data-dir", str(data_dir))
    assert code == 1
    assert message in output
    assert "Traceback" not in output


def test_escrow_nodes_connect_with_the_baked_macaroon_and_participants_with_admin(
    tmp_path: Path,
) -> None:
    layout = Layout(tmp_path, BASE, 2)
    path = layout.write_connection_file(
        State.new(BASE), dict.fromkeys(layout.node_names, "02" + "00" * 32), hold_expiry_delta=18
    )
    for escrow in ("escrow", "escrow-2"):
        node = layout.node(escrow)
        assert load_node_connection(path, escrow).macaroon_path == str(node.escrow_macaroon_path)
        assert node.escrow_macaroon_path.parent == node.macaroon_path.parent  # beside admin's
        assert node.escrow_macaroon_path != node.macaroon_path
        # Admin only when asked for.
        chosen = load_node_connection(path, escrow, admin=True).macaroon_path
        assert chosen == str(node.macaroon_path)
    for participant in ("employer", "worker", "swap"):
        node = layout.node(participant)
        assert load_node_connection(path, participant).macaroon_path == str(node.macaroon_path)


@pytest.mark.parametrize(("admin", "expected"), [(False, "baked"), (True, "admin")])
async def test_taskhold_takes_the_escrow_s_admin_macaroon_only_when_told(
    tmp_path: Path, admin: bool, expected: str
) -> None:
    layout = Layout(tmp_path, BASE)
    path = layout.write_connection_file(
        State.new(BASE), dict.fromkeys(layout.node_names, "02" + "00" * 32), hold_expiry_delta=18
    )
    settings = Settings(
        data_dir=tmp_path, lightning="lnd", lnd_connection_file=path, lnd_admin_macaroon=admin
    )
    backend = _lnd_backend(settings, path, "escrow")
    assert isinstance(backend, LndBackend)
    node = layout.node("escrow")
    paths = {"baked": node.escrow_macaroon_path, "admin": node.macaroon_path}
    assert backend._rest.macaroon_path == paths[expected]
    await backend.close()
