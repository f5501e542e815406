"""``GET /metrics``: the operator's figures in the Prometheus text format (version 0.0.4).

What the escrow node can carry beside what open tasks claim of it (the figures ``/v1/info``
shows in ``capacity_now``: held msat, free HTLC slots …), admission refusals by limit, payouts
waiting for the node's own outbound liquidity (the operator's alert), open tasks by state,
failed payout attempts by kind, the outbox's backlog per relay (events not acked, age of the
oldest), whether intake is paused (``taskhold admin pause``), the engine's pass durations and
the API's request durations by route template (histograms).

Unauthenticated, like ``/v1/info``: every figure is a count or a sum over all tasks, never a task
id, key, invoice, preimage or participant, and the capacity figures are public there already.
An operator who would rather keep them private firewalls the path. Cheap, for a scraper that
calls every few seconds: one transaction of two grouped counts over the state index (open tasks
only, never the history), the intake switch and the outbox's backlog (rows not yet done), and
one node call bounded by :data:`NODE_READ_TIMEOUT_S`. While the
node cannot be read, its figures and those derived from them are left out and
``taskhold_node_up`` is 0: the answer is still a 200. Labels are limits, states, payout kinds,
the configured relay URLs (published in ``/v1/info`` already), HTTP methods, route templates and
status classes: never a task id, a key or an invoice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from taskhold.escrow.admission import LIMITS, Capacity
from taskhold.escrow.stats import Durations, Series
from taskhold.lightning.base import LightningError, NodeCapacity
from taskhold.payments.held import PayoutKind
from taskhold.publiclog.publisher import RelayLag, owed_by_relay
from taskhold.store.controls import INTAKE_PAUSED, read_control
from taskhold.tasks import TaskState
from taskhold.tasks.model import TERMINAL_STATES

from .deps import services_of

if TYPE_CHECKING:
    from taskhold.escrow.context import EscrowContext
    from taskhold.services import Services
    from taskhold.store import HoldCommitments

__all__ = ["CONTENT_TYPE", "NODE_READ_TIMEOUT_S", "OPEN_STATES", "exposition", "router"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
NODE_READ_TIMEOUT_S = 5.0
"""A node slower than this to give its figures counts as down for this scrape."""

OPEN_STATES = tuple(state for state in TaskState if state not in TERMINAL_STATES)
"""States counted by ``taskhold_open_tasks``; finished tasks would only grow the count's cost."""

CLAIM_GAUGES = (
    ("awaiting_count", "taskhold_tasks_awaiting_payment", "Tasks whose hold invoice is unpaid"),
    ("awaiting_msat", "taskhold_tasks_awaiting_payment_msat", "Their amounts (msat)"),
    ("held_count", "taskhold_tasks_held", "Tasks whose HTLC the escrow node holds"),
    ("held_msat", "taskhold_tasks_held_msat", "Their amounts (msat)"),
)
"""What open tasks claim of the node, read from the database alone: present while it is down."""

NODE_GAUGES = (
    (("node", "inbound_msat"), "taskhold_node_inbound_msat", "Inbound liquidity (msat)"),
    (("node", "outbound_msat"), "taskhold_node_outbound_msat", "Outbound liquidity (msat)"),
    (("node", "htlc_slots_free"), "taskhold_node_htlc_slots_free", "Free incoming HTLC slots"),
    (("node", "htlc_slots_max"), "taskhold_node_htlc_slots_max", "Incoming HTLC slots in all"),
    (
        ("free_slots",),
        "taskhold_capacity_free_slots",
        "HTLC slots left once every unpaid hold invoice is paid",
    ),
    (
        ("free_inbound_msat",),
        "taskhold_capacity_free_inbound_msat",
        "Inbound liquidity left once every unpaid hold invoice is paid (msat)",
    ),
    (
        ("free_outbound_msat",),
        "taskhold_capacity_free_outbound_msat",
        "Outbound liquidity left once every open task's worker is paid (msat)",
    ),
    (
        ("key_slot_limit",),
        "taskhold_capacity_key_slot_limit",
        "HTLC slots the open tasks of one employer key may hold",
    ),
    (
        ("key_liquidity_limit_msat",),
        "taskhold_capacity_key_liquidity_limit_msat",
        "Inbound liquidity the open tasks of one employer key may hold (msat)",
    ),
)
"""The escrow node's figures and those derived from them (``Capacity.figures``): absent while
the node cannot be read."""

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The figures in the Prometheus text format; see the module's docstring."""
    requests: Durations = request.app.state.request_durations
    return Response(await exposition(services_of(request), requests), media_type=CONTENT_TYPE)


async def exposition(services: Services, requests: Durations | None = None) -> bytes:
    """Read the figures now and render them."""
    ctx = services.engine.ctx
    async with services.store.transaction() as tx:
        promised = await tx.hold_commitments("")
        open_tasks = await tx.count_in(OPEN_STATES)
        paused = await read_control(tx, INTAKE_PAUSED)
        lag = await owed_by_relay(tx.session, services.settings.relays)
    node = await _node_figures(ctx)
    figures = None if node is None else Capacity(node, promised).figures(services.settings)
    scrape = _Figures(ctx, promised, figures, open_tasks)
    extra = _Operations(
        ctx, paused is not None and bool(paused.value), lag, requests or Durations(), ctx.now()
    )
    return generate_latest(_Both(scrape, extra))


class _Both:
    def __init__(self, *parts: _Figures | _Operations) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            yield from part.collect()


async def _node_figures(ctx: EscrowContext) -> NodeCapacity | None:
    try:
        async with asyncio.timeout(NODE_READ_TIMEOUT_S):
            return await ctx.lightning.capacity()
    except (LightningError, TimeoutError):
        return None


class _Figures:
    """One scrape's figures, as ``generate_latest`` collects them."""

    def __init__(
        self,
        ctx: EscrowContext,
        promised: HoldCommitments,
        figures: dict[str, Any] | None,
        open_tasks: dict[TaskState, int],
    ) -> None:
        self.ctx = ctx
        self.promised = promised
        self.figures = figures
        self.open_tasks = open_tasks

    def collect(self) -> Iterator[Metric]:
        up = self.figures is not None
        yield GaugeMetricFamily(
            "taskhold_node_up", "1 if the escrow node's figures could be read", value=int(up)
        )
        if self.figures is not None:
            for path, name, help_text in NODE_GAUGES:
                yield GaugeMetricFamily(name, help_text, value=_at(self.figures, path))
        for attribute, name, help_text in CLAIM_GAUGES:
            yield GaugeMetricFamily(name, help_text, value=getattr(self.promised, attribute))
        refusals = CounterMetricFamily(
            "taskhold_capacity_refusals",
            "Hold invoices refused by admission control since start, by limit",
            labels=["limit"],
        )
        counted = self.ctx.capacity_refusals
        for limit in dict.fromkeys((*LIMITS, *sorted(counted))):
            refusals.add_metric([limit], counted[limit])
        yield refusals
        liquidity = self.ctx.liquidity
        yield GaugeMetricFamily(
            "taskhold_payouts_waiting_for_liquidity",
            "Payouts waiting for the escrow node's outbound liquidity",
            value=len(liquidity.waiting),
        )
        yield GaugeMetricFamily(
            "taskhold_payouts_waiting_for_liquidity_msat",
            "What they wait to pay (msat)",
            value=liquidity.waiting_msat,
        )
        yield CounterMetricFamily(
            "taskhold_payout_liquidity_shortages",
            "Payout attempts that found the escrow node short of outbound liquidity, since start",
            value=liquidity.shortages_total,
        )
        by_state = GaugeMetricFamily(
            "taskhold_open_tasks", "Tasks not yet finished, by state", labels=["state"]
        )
        for state, count in self.open_tasks.items():
            by_state.add_metric([state.value], count)
        yield by_state


def _at(figures: dict[str, Any], path: tuple[str, ...]) -> int:
    value: Any = figures
    for key in path:
        value = value[key]
    return int(value)


class _Operations:
    """The operator's console figures: intake, payout failures, outbox lag, timings."""

    def __init__(
        self,
        ctx: EscrowContext,
        paused: bool,
        lag: dict[str, RelayLag],
        requests: Durations,
        now: int,
    ) -> None:
        self.ctx = ctx
        self.paused = paused
        self.lag = lag
        self.requests = requests
        self.now = now

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "taskhold_intake_paused",
            "1 while the operator has paused intake (create and fund refused)",
            value=int(self.paused),
        )
        failures = CounterMetricFamily(
            "taskhold_payout_failures",
            "Payout attempts that failed since start, by kind (the payee's or the route's fault)",
            labels=["kind"],
        )
        counted = self.ctx.payout_failures
        for kind in dict.fromkeys((*(k.value for k in PayoutKind), *sorted(counted))):
            failures.add_metric([kind], counted[kind])
        yield failures
        events = GaugeMetricFamily(
            "taskhold_outbox_unacked_events",
            "Signed events a configured relay has not acknowledged yet",
            labels=["relay"],
        )
        age = GaugeMetricFamily(
            "taskhold_outbox_oldest_unacked_age_seconds",
            "Age of the oldest event a relay has not acknowledged (0: none owed)",
            labels=["relay"],
        )
        for relay, owed in self.lag.items():
            events.add_metric([relay], owed.events)
            oldest = owed.oldest_created_at
            age.add_metric([relay], 0 if oldest is None else max(0, self.now - oldest))
        yield events
        yield age
        yield _histogram(
            "taskhold_engine_tick_seconds",
            "Duration of the escrow engine's passes",
            [],
            self.ctx.tick_durations,
        )
        yield _histogram(
            "taskhold_http_request_duration_seconds",
            "Duration of API requests, by method, route template and status class",
            ["method", "route", "status"],
            self.requests,
        )


def _histogram(
    name: str, help_text: str, labels: list[str], durations: Durations
) -> HistogramMetricFamily:
    """A labelled histogram shows the series observed so far; an unlabelled one is always there
    (zero before the first observation)."""
    family = HistogramMetricFamily(name, help_text, labels=labels)
    series = dict(durations.series)
    if not labels and not series:
        series[()] = Series([0] * (len(durations.bounds_s) + 1))
    bounds = [*(repr(float(bound)) for bound in durations.bounds_s), "+Inf"]
    for values, found in series.items():
        buckets = list(zip(bounds, found.cumulative(), strict=True))
        family.add_metric(list(values), buckets, found.sum_s)
    return family
