"""The escrow node's least-privilege macaroon on the real devnet (issue #18): lnd refuses it
every call that could move the node's on-chain coins or change its channels, peers or
macaroons; ``devnet.json`` gives it to taskhold for the escrow node; and a whole task lifecycle,
paid and refunded, runs on it through taskhold's ordinary start-up (``build_services``)."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.devnet_network import DevnetHandle, settled_balance

from taskhold.devnet import control
from taskhold.devnet.binaries import find_bin_dir
from taskhold.devnet.layout import Layout
from taskhold.lightning.base import LightningError
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_permissions import bake_request
from taskhold.lightning.lnd_rest import LndRest, b64, load_node_connection

from .test_escrow_e2e import (
    EscrowStack,
    funded_task,
    lnd_settings,
    open_escrow_stack,
    submitted_task,
)

pytestmark = [pytest.mark.devnet]

REFUSAL = "permission denied"
"""lnd's answer (macaroon-bakery's ErrPermissionDenied) to a call the macaroon does not permit."""


def _rest(devnet: DevnetHandle, node: str, *, admin: bool = False) -> LndRest:
    connection = load_node_connection(devnet.connection_file, node, admin=admin)
    return LndRest(connection.rest_url, connection.tls_cert_path, connection.macaroon_path)


async def test_lnd_refuses_the_escrow_macaroon_on_chain_sends_addresses_opens_and_baking(
    devnet: DevnetHandle,
) -> None:
    escrow, admin = _rest(devnet, "escrow"), _rest(devnet, "escrow", admin=True)
    employer = devnet.wallet("employer")
    try:
        address = await employer.new_address()
        coins_before = (await admin.call("GET", "/v1/balance/blockchain"))["confirmed_balance"]
        hostile = [
            ("POST", "/v1/transactions", {"addr": address, "amount": "100000"}, None),
            ("POST", "/v1/transactions", {"addr": address, "send_all": True}, None),
            ("GET", "/v1/newaddress", None, {"type": "TAPROOT_PUBKEY"}),
            (
                "POST",
                "/v1/channels",
                {
                    "node_pubkey": b64(bytes.fromhex(devnet.pubkey("worker"))),
                    "local_funding_amount": "200000",
                },
                None,
            ),
            ("POST", "/v1/peers", {"addr": {"pubkey": "02" + "11" * 32, "host": "x:1"}}, None),
            ("POST", "/v1/macaroon", bake_request(), None),
            ("GET", "/v1/balance/blockchain", None, None),
            ("GET", "/v1/channels/closed", None, None),
        ]
        for method, route, body, params in hostile:
            with pytest.raises(LightningError) as refused:
                await escrow.call(method, route, body=body, params=params)
            assert refused.value.node_message == REFUSAL, (method, route, refused.value)
        # The same node, the same REST endpoint: what taskhold calls is answered...
        info = await escrow.call("GET", "/v1/getinfo")
        assert info["identity_pubkey"] == devnet.pubkey("escrow")
        assert "channels" in await escrow.call("GET", "/v1/channels")
        # ...and the refusal is the macaroon's: admin gets an address where it got none.
        assert (await admin.call("GET", "/v1/newaddress"))["address"].startswith("bcrt1")
        coins_after = (await admin.call("GET", "/v1/balance/blockchain"))["confirmed_balance"]
        assert coins_after == coins_before
    finally:
        await escrow.aclose()
        await admin.aclose()
        await employer.close()


def test_devnet_json_gives_taskhold_the_baked_macaroon_for_the_escrow_node(
    devnet: DevnetHandle,
) -> None:
    document = json.loads(devnet.connection_file.read_text())
    layout = Layout(devnet.data_dir)
    escrow = layout.node("escrow")
    entry = document["nodes"]["escrow"]
    assert entry["macaroon_path"] == str(escrow.escrow_macaroon_path)
    assert entry["admin_macaroon_path"] == str(escrow.macaroon_path)
    baked = escrow.escrow_macaroon_path
    assert stat.S_IMODE(baked.stat().st_mode) == 0o600
    assert baked.read_bytes() != escrow.macaroon_path.read_bytes()
    for participant in ("employer", "worker"):
        node = layout.node(participant)
        assert document["nodes"][participant]["macaroon_path"] == str(node.macaroon_path)


@pytest.fixture
async def default_stack(
    devnet: DevnetHandle, tmp_path: Path, database_url: str
) -> AsyncIterator[EscrowStack]:
    """taskhold started as an operator starts it on the devnet: ``lightning=lnd`` and the
    connection file, nothing about macaroons."""
    settings = lnd_settings(devnet, tmp_path / "data", database_url)
    async with open_escrow_stack(devnet, settings) as stack:
        yield stack


async def test_a_task_is_paid_and_another_refunded_on_the_baked_macaroon(
    default_stack: EscrowStack, devnet: DevnetHandle
) -> None:
    backend = default_stack.services.lightning
    assert isinstance(backend, LndBackend)
    baked = Layout(devnet.data_dir).node("escrow").escrow_macaroon_path
    assert backend._rest.macaroon_path == baked
    employer, worker = default_stack.client(), default_stack.client()
    worker_before = await settled_balance(default_stack.worker_wallet)

    task = await submitted_task(default_stack, employer, worker)  # create, fund, claim, proof
    await employer.approve(task["task_id"])

    async def is_paid() -> bool:
        return (await employer.get_task(task["task_id"]))["state"] == "PAID"

    await default_stack.drive(is_paid)
    paid = await employer.get_task(task["task_id"])
    assert await settled_balance(default_stack.worker_wallet) - worker_before == paid["payout_msat"]

    employer_before = await settled_balance(default_stack.employer_wallet)
    cancelled = await funded_task(default_stack, employer)
    await employer.cancel(cancelled["task_id"], reason="plans changed")

    async def is_refunded() -> bool:
        return (await employer.get_task(cancelled["task_id"]))["state"] == "REFUNDED"

    await default_stack.drive(is_refunded)
    assert await settled_balance(default_stack.employer_wallet) == employer_before


async def test_up_on_a_running_devnet_that_gave_the_escrow_admin_bakes_and_names_its_own(
    devnet: DevnetHandle,
) -> None:
    """A devnet started before this change (``devnet.json`` naming admin for the escrow) gets
    the baked macaroon on its next ``up``, without being rebuilt."""
    original = devnet.connection_file.read_text()
    layout = Layout(devnet.data_dir)
    escrow = layout.node("escrow")
    older = json.loads(original)
    older["nodes"]["escrow"]["macaroon_path"] = str(escrow.macaroon_path)
    del older["nodes"]["escrow"]["admin_macaroon_path"]
    devnet.connection_file.write_text(json.dumps(older))
    try:
        steps: list[str] = []
        await control.up(devnet.data_dir, bin_dir=find_bin_dir(), progress=steps.append)
        assert steps[:2] == ["devnet already running", "baking escrow's taskhold macaroon"]
        entry = json.loads(devnet.connection_file.read_text())["nodes"]["escrow"]
        assert entry["macaroon_path"] == str(escrow.escrow_macaroon_path)
        assert entry["admin_macaroon_path"] == str(escrow.macaroon_path)
        assert entry["pubkey"] == devnet.pubkey("escrow")
        rest = _rest(devnet, "escrow")
        try:
            with pytest.raises(LightningError) as refused:
                await rest.call("GET", "/v1/newaddress")
            assert refused.value.node_message == REFUSAL
            assert (await rest.call("GET", "/v1/getinfo"))["identity_pubkey"] == entry["pubkey"]
        finally:
            await rest.aclose()
    finally:
        devnet.connection_file.write_text(original)
