"""The escrow macaroon's permission list against the code: every lnd REST route the escrow
backend calls must be in it (or taskhold, run with the baked macaroon, is refused that call on a
real node), and it must hold nothing the code does not call."""

from __future__ import annotations

import re
from pathlib import Path

import taskhold.lightning as lightning_package
from taskhold.lightning.lnd_permissions import ESCROW_RPCS, bake_request

# The modules of the escrow backend (LndBackend and what it calls; the pool only combines them).
ESCROW_MODULES = ("lnd.py", "lnd_invoices.py", "lnd_channels.py", "lnd_rest.py", "pool.py")
_ROUTE_LITERAL = re.compile(r'f?"(/v[12]/[^"?]*)')


def _shape(route: str) -> str:
    """A route with its path parameters blanked: ``/v2/router/track/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", route)


def _called_routes() -> set[str]:
    """The lnd REST routes written as string literals in the escrow backend's code (docstrings
    name routes in ``double backticks``, which the pattern skips)."""
    folder = Path(lightning_package.__file__).parent
    found = set()
    for module in ESCROW_MODULES:
        for route in _ROUTE_LITERAL.findall((folder / module).read_text()):
            found.add(_shape(route))
    return found


def _permitted_routes() -> set[str]:
    return {_shape(key.split(" ", 1)[1]) for key in ESCROW_RPCS}


def test_every_route_the_escrow_backend_calls_is_permitted() -> None:
    called = _called_routes()
    assert "/v2/invoices/hodl" in called and "/v2/invoices/subscribe/{}" in called  # it reads
    assert called - _permitted_routes() == set()


def test_the_macaroon_permits_no_route_the_escrow_backend_does_not_call() -> None:
    assert _permitted_routes() - _called_routes() == set()


def test_the_bake_request_names_only_rpc_uris_once_each() -> None:
    permissions = bake_request()["permissions"]
    assert isinstance(permissions, list)
    assert {p["entity"] for p in permissions} == {"uri"}
    actions = [p["action"] for p in permissions]
    assert len(actions) == len(set(actions)) == len(ESCROW_RPCS)
    assert set(actions) == set(ESCROW_RPCS.values())
    # No RPC that moves on-chain coins, opens channels, changes peers or bakes macaroons.
    for forbidden in ("SendCoins", "NewAddress", "OpenChannel", "CloseChannel", "ConnectPeer"):
        assert not any(action.endswith("/" + forbidden) for action in actions)
    assert not any("BakeMacaroon" in action or "WalletKit" in action for action in actions)
