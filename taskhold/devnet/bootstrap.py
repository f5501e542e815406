"""Fund the devnet's wallets, open its three channels, and prove payments route across them.

Every step first looks at what the nodes already have, so it runs on every ``up``: on a fresh data
dir it does the work, on a restarted one it only waits for the channels to come back.

Routing: the channels are public. With ``--bitcoin.defaultchanconfs=1`` one block makes them
usable for direct payments (employer->escrow, escrow->worker), which is all the escrow needs. A
two-hop payment employer->escrow->worker additionally needs the escrow->worker channel in the
employer's graph, i.e. announced, which lnd does only at 6 confirmations; gossip then takes a
second or two with ``--trickledelay=50``. So the devnet mines 6 blocks after opening and waits
until every edge is in every node's graph before the test payments.

The swap node (the devnet swap server's, playing Boltz) opens the third channel, to the escrow,
and pushes half of it across: it pays the escrow's hold invoices for submarine swaps, and the
escrow pays its hold invoices for reverse swaps, so both directions need liquidity.

Extra escrow nodes (``escrow-2`` ..., a node pool) get what the escrow gets from the employer and
toward the worker: their coins go out in the same transaction round, so one block funds them all,
and their channels confirm in the same six blocks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping

from taskhold.devnet.btcd import BtcdRpc
from taskhold.devnet.chain import mine_and_sync, wait_synced
from taskhold.devnet.lnd_node import LndAdmin
from taskhold.lightning.base import LightningError, PaymentFailed
from taskhold.lightning.lnd import LndBackend
from taskhold.lightning.lnd_wallet import LndWallet

__all__ = [
    "CHANNELS",
    "CHANNEL_CAPACITY_SAT",
    "CHANNEL_PUSH_SAT",
    "MAX_CHANNEL_SAT",
    "ONCHAIN_FUNDING_SAT",
    "SWAP_CHANNEL_PUSH_SAT",
    "backend_of",
    "channels_of",
    "fund_wallets",
    "funding_of",
    "open_channel",
    "open_channels",
    "prove_route",
    "wait_for",
    "wallet_of",
]

Progress = Callable[[str], None]

CHANNEL_CAPACITY_SAT = 10_000_000
"""Each channel's size: below lnd's 16,777,215 sat limit for non-wumbo channels."""
MAX_CHANNEL_SAT = 16_777_215
"""lnd's largest channel without ``--protocol.wumbo-channels``."""
CHANNEL_PUSH_SAT = 1_000_000
"""Given to the channel's other side at opening, so every node can also pay back."""
SWAP_CHANNEL_PUSH_SAT = 5_000_000
"""Pushed from the swap node to the escrow: half the channel, liquidity both ways."""
CHANNELS = (("employer", "escrow"), ("escrow", "worker"), ("swap", "escrow"))
"""(opener, acceptor): the employer pays the escrow, the escrow pays the worker; the swap node
and the escrow pay each other. The first two keep their order (tests rely on it)."""
ONCHAIN_FUNDING_SAT = {"escrow": 50_000_000, "worker": 5_000_000, "swap": 30_000_000}
"""Sent from the employer's coinbase coins: the escrow opens a channel, the worker keeps the
on-chain reserve lnd wants for anchor channels, the swap node opens its channel and keeps about
20,000,000 sat for reverse-swap lockups."""
ANNOUNCEMENT_CONFIRMATIONS = 6


def _extra_escrows(names: Iterable[str]) -> list[str]:
    return [name for name in names if name.startswith("escrow-")]


def channels_of(names: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """:data:`CHANNELS`, then employer -> escrow-K and escrow-K -> worker per extra escrow."""
    extra = _extra_escrows(names)
    return (
        *CHANNELS,
        *((pair) for name in extra for pair in (("employer", name), (name, "worker"))),
    )


def funding_of(names: Iterable[str]) -> dict[str, int]:
    """:data:`ONCHAIN_FUNDING_SAT`, and the escrow's amount for each extra escrow."""
    extra = _extra_escrows(names)
    return {**ONCHAIN_FUNDING_SAT, **dict.fromkeys(extra, ONCHAIN_FUNDING_SAT["escrow"])}


async def fund_wallets(btcd: BtcdRpc, nodes: Mapping[str, LndAdmin], progress: Progress) -> None:
    """Give the escrow, the worker and the swap node on-chain coins from the employer's mined
    ones."""
    employer = nodes["employer"]
    funding = funding_of(nodes)
    employer_channels = sum(opener == "employer" for opener, _ in channels_of(nodes))
    needed_sat = sum(funding.values()) + (1 + employer_channels) * CHANNEL_CAPACITY_SAT
    await wait_for(
        functools.partial(_balance_at_least, employer, needed_sat),
        "the employer's mined coins to mature in its wallet",
    )
    sent = False
    for name, amount_sat in funding.items():
        if await nodes[name].confirmed_balance_sat() >= amount_sat // 2:
            continue
        progress(f"sending {amount_sat:,} sat on-chain to {name}")
        await employer.send_coins(await nodes[name].new_address(), amount_sat)
        sent = True
    if not sent:
        return
    await mine_and_sync(btcd, nodes.values(), 1)
    for name, amount_sat in funding.items():
        await wait_for(
            functools.partial(_balance_at_least, nodes[name], amount_sat // 2),
            f"{name}'s on-chain funds to confirm",
        )


async def open_channels(
    btcd: BtcdRpc, nodes: Mapping[str, LndAdmin], pubkeys: Mapping[str, str], progress: Progress
) -> None:
    """Open the channels that do not exist yet; wait until all are active on both ends."""
    channels = channels_of(nodes)
    opened = False
    for opener, acceptor in channels:
        if await nodes[opener].has_channel_with(pubkeys[acceptor]):
            continue
        progress(f"opening a {CHANNEL_CAPACITY_SAT:,} sat channel {opener} -> {acceptor}")
        await open_channel(
            nodes[opener],
            pubkeys[acceptor],
            nodes[acceptor].node.p2p_address,
            CHANNEL_CAPACITY_SAT,
            _push_sat(opener, acceptor),
        )
        opened = True
    if opened:
        progress(f"mining {ANNOUNCEMENT_CONFIRMATIONS} blocks to confirm and announce channels")
        await mine_and_sync(btcd, nodes.values(), ANNOUNCEMENT_CONFIRMATIONS)
    else:
        await wait_synced(btcd, nodes.values())
    progress("waiting for channels to become active")
    for opener, acceptor in channels:
        await wait_for(
            functools.partial(
                _active_both_ways,
                nodes[opener],
                nodes[acceptor],
                pubkeys[opener],
                pubkeys[acceptor],
            ),
            f"channel {opener} -> {acceptor} to become active",
            within_seconds=120.0,
        )
    progress("waiting for every channel to reach every node's graph")
    channel_ids = [
        (await nodes[opener].active_channel_ids(pubkeys[acceptor]))[0]
        for opener, acceptor in channels
    ]
    for admin in nodes.values():
        for chan_id in channel_ids:
            await wait_for(
                functools.partial(admin.knows_edge, chan_id),
                f"{admin.node.name} to learn channel {chan_id} from gossip",
                within_seconds=120.0,
            )


async def prove_route(
    nodes: Mapping[str, LndAdmin], progress: Progress, *, within_seconds: float = 90.0
) -> None:
    """Pay 1,000 sat employer -> escrow -> worker, then swap -> escrow and escrow -> swap; retry
    each until it succeeds or time is up."""
    for route in (("employer", "worker"), ("swap", "escrow"), ("escrow", "swap")):
        await _prove_payment(nodes, *route, progress=progress, within_seconds=within_seconds)


async def _prove_payment(
    nodes: Mapping[str, LndAdmin],
    payer_name: str,
    payee_name: str,
    *,
    progress: Progress,
    within_seconds: float,
) -> None:
    path = " -> escrow -> " if (payer_name, payee_name) == ("employer", "worker") else " -> "
    route = f"{payer_name}{path}{payee_name}"
    progress(f"test payment {route}")
    payee = wallet_of(nodes[payee_name])
    payer = backend_of(nodes[payer_name])
    try:
        invoice = await payee.create_invoice(1_000_000, memo="devnet route check")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        while True:
            try:
                await payer.pay_invoice(
                    invoice.payment_request,
                    max_fee_msat=100_000,
                    timeout_seconds=30,
                    cltv_limit=2016,  # lnd's own default limit (--max-cltv-expiry)
                )
                return
            except PaymentFailed as exc:
                if loop.time() > deadline:
                    raise LightningError(f"{route} does not route: {exc.reason}") from exc
                # A failed attempt makes lnd avoid that channel for a while; start afresh.
                await nodes[payer_name].reset_mission_control()
                await asyncio.sleep(1.0)
    finally:
        await payee.close()
        await payer.close()


def _push_sat(opener: str, acceptor: str) -> int:
    return SWAP_CHANNEL_PUSH_SAT if "swap" in (opener, acceptor) else CHANNEL_PUSH_SAT


async def open_channel(
    opener: LndAdmin,
    pubkey: str,
    address: str,
    capacity_sat: int,
    push_sat: int,
    *,
    private: bool = False,
) -> str:
    """Connect and open; return the channel point (``txid:index``). A fresh peer connection can
    drop (lnd answers "peer ... is not online"), most often on a loaded machine, so reconnect and
    retry for a while."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60.0
    while True:
        await opener.connect(pubkey, address)
        try:
            return await opener.open_channel(
                pubkey, capacity_sat, push_sat=push_sat, private=private
            )
        except LightningError as exc:
            if "not online" not in (exc.node_message or "") or loop.time() > deadline:
                raise
        await asyncio.sleep(1.0)


def wallet_of(admin: LndAdmin) -> LndWallet:
    node = admin.node
    return LndWallet(node.rest_url, node.tls_cert_path, node.macaroon_path)


def backend_of(admin: LndAdmin) -> LndBackend:
    node = admin.node
    return LndBackend(node.rest_url, node.tls_cert_path, node.macaroon_path)


async def _balance_at_least(admin: LndAdmin, amount_sat: int) -> bool:
    return await admin.confirmed_balance_sat() >= amount_sat


async def _active_both_ways(
    opener: LndAdmin, acceptor: LndAdmin, opener_pubkey: str, acceptor_pubkey: str
) -> bool:
    return bool(await opener.active_channel_ids(acceptor_pubkey)) and bool(
        await acceptor.active_channel_ids(opener_pubkey)
    )


async def wait_for(
    check: Callable[[], Awaitable[bool]],
    what: str,
    *,
    within_seconds: float = 60.0,
    interval: float = 0.3,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise LightningError(f"timed out after {within_seconds:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
