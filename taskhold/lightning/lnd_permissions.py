"""The least-privilege macaroon for an lnd escrow node: exactly the RPCs taskhold's escrow backend
calls (:mod:`.lnd`, :mod:`.lnd_invoices`, :mod:`.lnd_channels`; the pool only combines such
backends), and nothing else.

Each permission is lnd's ``uri`` entity with the RPC's full method name as action: lnd accepts a
call whose macaroon holds ``uri:<full method>`` (``macaroons/service.go``) even without the
broad ``entity:action`` pair the method requires. Broad pairs would grant far more: the
``offchain:write`` that paying needs also allows ``AbandonChannel``,
``UpdateChannelPolicy`` and ``DeleteAllPayments``; ``GetDebugInfo`` (the one read of
``holdexpirydelta``) requires ``info``, ``offchain``, ``onchain`` and ``peers`` read, which would
let the holder read the on-chain wallet. With URIs the macaroon can do the calls below and is
refused ``permission denied`` on every other one: no on-chain send, no new address, no channel
open or close, no peer change, no macaroon baking.

Bake it with ``POST /v1/macaroon`` (``taskhold devnet up`` does for its escrow nodes) or
``lncli bakemacaroon`` with the same ``uri:...`` arguments (see ``docs/lnd-macaroon.md``).
"""

from __future__ import annotations

__all__ = ["ESCROW_RPCS", "bake_request"]

ESCROW_RPCS: dict[str, str] = {
    # REST route taskhold calls -> the RPC behind it (lnd v0.21 lightning.yaml,
    # invoicesrpc/invoices.yaml, routerrpc/router.yaml). What the RPC would need as broad
    # permissions, from rpcserver.go MainRPCServerPermissions and the sub-servers' macPermissions,
    # is in the comment.
    "POST /v2/invoices/hodl": "/invoicesrpc.Invoices/AddHoldInvoice",  # invoices:write
    "GET /v2/invoices/lookup": "/invoicesrpc.Invoices/LookupInvoiceV2",  # invoices:write (sic)
    "GET /v2/invoices/subscribe/{r_hash}": "/invoicesrpc.Invoices/SubscribeSingleInvoice",
    # invoices:read
    "POST /v2/invoices/settle": "/invoicesrpc.Invoices/SettleInvoice",  # invoices:write
    "POST /v2/invoices/cancel": "/invoicesrpc.Invoices/CancelInvoice",  # invoices:write
    "GET /v1/invoices": "/lnrpc.Lightning/ListInvoices",  # invoices:read
    "GET /v1/invoices/subscribe": "/lnrpc.Lightning/SubscribeInvoices",  # invoices:read
    "POST /v2/router/send": "/routerrpc.Router/SendPaymentV2",  # offchain:write
    "GET /v2/router/track/{payment_hash}": "/routerrpc.Router/TrackPaymentV2",  # offchain:read
    "GET /v1/getinfo": "/lnrpc.Lightning/GetInfo",  # info:read
    "GET /v1/channels": "/lnrpc.Lightning/ListChannels",  # offchain:read
    "GET /v1/getdebuginfo": "/lnrpc.Lightning/GetDebugInfo",
    # info:read, offchain:read, onchain:read, peers:read
}
"""Every lnd REST route the escrow backend calls, and the RPC the macaroon permits for it."""


def bake_request() -> dict[str, object]:
    """The body of ``POST /v1/macaroon`` for the escrow macaroon (root key 0, lnd's default)."""
    return {
        "permissions": [
            {"entity": "uri", "action": rpc} for rpc in sorted(set(ESCROW_RPCS.values()))
        ]
    }
