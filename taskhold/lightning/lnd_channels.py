"""lnd's channel list (``GET /v1/channels``) as the node's :class:`NodeCapacity`.

Which of a channel's two constraint sets bounds what (lnd v0.21.2-beta source, and the devnet):
each set belongs to one side and bounds what THAT side may do. ``local_constraints`` is lnd's
``LocalChanCfg``, ``remote_constraints`` its ``RemoteChanCfg``; ``chan_reserve_sat`` is what the
owner must keep, ``max_accepted_htlcs`` and ``max_pending_amt_msat`` how many HTLCs (and how much)
the owner may OFFER the other side (``channeldb.ChannelStateBounds``; ``lnwallet/channel.go``
``validateCommitmentSanity`` checks the remote's added HTLCs against ``RemoteChanCfg`` and ours
against ``LocalChanCfg``). lnrpc's comment on ``max_accepted_htlcs`` ("incoming HTLCs the
initiator will accept") reads the other way round; it is not what the code does. So the HTLCs
the peer may add to us, our incoming ones, are bounded by ``remote_constraints.max_accepted_htlcs``.
On the devnet: a channel the escrow opened to the worker with ``remote_max_htlcs=5`` reports 5
there (the worker reports 5 in its ``local_constraints``; the escrow's own ``local_constraints``
keep 483); the worker then got five HTLCs held by the escrow over it, and its sixth was refused
(``FAILURE_REASON_INSUFFICIENT_BALANCE``: lnd gives a channel with no free slot no bandwidth).

``local_balance`` and ``remote_balance`` (sat) are the commitment's balances with pending HTLCs
already taken out, and the initiator's balance with the commitment fee taken out: a held HTLC
lowers ``remote_balance`` by its amount.
"""

from __future__ import annotations

from collections.abc import Iterable

from taskhold.lightning.base import NodeCapacity
from taskhold.lightning.lnd_rest import JSONObject, json_int

__all__ = ["capacity_from_lnd"]

_MSAT_PER_SAT = 1000


def capacity_from_lnd(channels: Iterable[JSONObject]) -> NodeCapacity:
    """The node's capacity from ``lnrpc.Channel`` objects; inactive channels count for nothing."""
    inbound = outbound = slots_max = slots_free = largest = 0
    for channel in channels:
        if not channel.get("active"):
            continue
        local = channel.get("local_constraints") or {}
        remote = channel.get("remote_constraints") or {}
        incoming = [htlc for htlc in channel.get("pending_htlcs") or () if htlc.get("incoming")]
        incoming_msat = sum(json_int(htlc.get("amount")) for htlc in incoming) * _MSAT_PER_SAT
        # The peer can send us what it has above its reserve, within its in-flight cap.
        receivable = _msat(channel.get("remote_balance")) - _msat(remote.get("chan_reserve_sat"))
        pending_cap = json_int(remote.get("max_pending_amt_msat"))
        if pending_cap:
            receivable = min(receivable, pending_cap - incoming_msat)
        receivable = max(0, receivable)
        sendable = _msat(channel.get("local_balance")) - _msat(local.get("chan_reserve_sat"))
        channel_slots = json_int(remote.get("max_accepted_htlcs"))
        inbound += receivable
        outbound += max(0, sendable)
        slots_max += channel_slots
        slots_free += max(0, channel_slots - len(incoming))
        largest = max(largest, receivable)
    return NodeCapacity(
        inbound_msat=inbound,
        outbound_msat=outbound,
        htlc_slots_free=slots_free,
        htlc_slots_max=slots_max,
        largest_inbound_msat=largest,
    )


def _msat(sat: object) -> int:
    return json_int(sat) * _MSAT_PER_SAT
