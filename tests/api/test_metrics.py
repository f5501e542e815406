"""``GET /metrics`` on the simulator, with set channel capacities.

The output is parsed (HELP, TYPE, samples with escaped labels) and read by name and labels: the
node's figures and the open tasks' claims agree with ``/v1/info``, admission refusals are counted
by limit per stack, a payout waiting for the escrow node's outbound liquidity shows until the
liquidity returns, and a node that cannot be read leaves its figures out with ``node_up`` 0 and
a 200. No task id, key, hash or invoice is in the answer.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.stacks import OpenStack, Stack
from support.task_flows import AMOUNT_MSAT, created, funded, submitted

from taskhold.actions import ACTIONS
from taskhold.admin.controls import set_intake
from taskhold.api import metrics
from taskhold.api.latency import METHODS
from taskhold.api.routes_tasks import op_path
from taskhold.client import TaskholdAPIError
from taskhold.escrow.admission import LIMITS
from taskhold.lightning.base import NodeCapacity
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.payments.held import PayoutKind
from taskhold.tasks import TaskState

# -- a tiny parser of the text exposition format (0.0.4) ------------------------------------------

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Labels = frozenset[tuple[str, str]]


@dataclass
class Scrape:
    helps: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def has(self, name: str) -> bool:
        return any(sample == name for sample, _ in self.samples)

    def labelled(self, name: str, label: str) -> dict[str, float]:
        return {
            dict(labels)[label]: value
            for (sample, labels), value in self.samples.items()
            if sample == name
        }


def _labels(text: str) -> Labels:
    pairs = []
    position = 0
    for match in _LABEL.finditer(text):
        assert match.start() == position, f"bad labels {text!r}"
        position = match.end()
        value = re.sub(r"\\.", lambda m: _UNESCAPE[m.group(0)], match.group(2))
        pairs.append((match.group(1), value))
    assert position == len(text), f"bad labels {text!r}"
    return frozenset(pairs)


_HISTOGRAM_SAMPLES = ("_bucket", "_sum", "_count")


def _family(scrape: Scrape, sample: str) -> str:
    """The family a sample belongs to: itself, or a histogram's name for its series."""
    for suffix in _HISTOGRAM_SAMPLES:
        base = sample.removesuffix(suffix)
        if base != sample and scrape.types.get(base) == "histogram":
            return base
    return sample


def parse(text: str) -> Scrape:
    """Every sample, and every sample's family has a HELP and a TYPE line before it."""
    scrape = Scrape()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            scrape.helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("gauge", "counter", "histogram"), line
            scrape.types[name] = kind
        else:
            match = _SAMPLE.fullmatch(line)
            assert match is not None, f"not a sample: {line!r}"
            name, labels, value = match.groups()
            family = _family(scrape, name)
            assert family in scrape.types and family in scrape.helps, f"{name} before its TYPE"
            key = (name, _labels(labels or ""))
            assert key not in scrape.samples, f"{key} twice"
            scrape.samples[key] = float(value)
    return scrape


def test_the_parser_reads_escaped_labels_and_refuses_junk() -> None:
    text = (
        '# HELP x_total a\n# TYPE x_total counter\nx_total{limit="a\\"b\\\\c\\nd",state="S"} 2.0\n'
    )
    assert parse(text).value("x_total", limit='a"b\\c\nd', state="S") == 2.0
    for junk in ("x 1\n", '# HELP x a\n# TYPE x gauge\nx{limit="a} 1\n'):
        with pytest.raises(AssertionError):
            parse(junk)


async def scrape(stack: Stack) -> Scrape:
    answer = await stack.http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


# -- the figures ----------------------------------------------------------------------------------

INFO_FIGURES = {
    "taskhold_node_inbound_msat": ("node", "inbound_msat"),
    "taskhold_node_outbound_msat": ("node", "outbound_msat"),
    "taskhold_node_htlc_slots_free": ("node", "htlc_slots_free"),
    "taskhold_node_htlc_slots_max": ("node", "htlc_slots_max"),
    "taskhold_tasks_awaiting_payment": ("awaiting_payment", "tasks"),
    "taskhold_tasks_awaiting_payment_msat": ("awaiting_payment", "msat"),
    "taskhold_tasks_held": ("held", "tasks"),
    "taskhold_tasks_held_msat": ("held", "msat"),
    "taskhold_capacity_free_slots": ("free_slots",),
    "taskhold_capacity_free_inbound_msat": ("free_inbound_msat",),
    "taskhold_capacity_free_outbound_msat": ("free_outbound_msat",),
    "taskhold_capacity_key_slot_limit": ("key_slot_limit",),
    "taskhold_capacity_key_liquidity_limit_msat": ("key_liquidity_limit_msat",),
}
"""Each figure of ``/v1/info`` ``capacity_now`` and its metric."""

NODE_METRICS = {name for name in INFO_FIGURES if not name.startswith("taskhold_tasks_")}


def _leaves(figures: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            found.update(_leaves(value, (*prefix, key)))
        else:
            found[(*prefix, key)] = value
    return found


async def test_the_figures_match_info_after_funding(stack_with: OpenStack) -> None:
    stack = await stack_with(htlc_slots=40, inbound_msat=100 * AMOUNT_MSAT, max_key_share=0.1)
    employer = stack.client()
    await funded(stack, employer)
    task = await created(stack, employer)
    await employer.request_funding(task["task_id"])
    await created(stack, employer)

    metrics = await scrape(stack)
    figures = _leaves((await stack.http.get("/v1/info")).json()["capacity_now"])

    assert set(figures) == set(INFO_FIGURES.values())  # a figure added there is added here too
    assert {name: metrics.value(name) for name in INFO_FIGURES} == {
        name: float(figures[path]) for name, path in INFO_FIGURES.items()
    }
    assert metrics.value("taskhold_node_htlc_slots_free") == 39  # the funded task's HTLC
    assert metrics.value("taskhold_tasks_held_msat") == AMOUNT_MSAT
    assert metrics.value("taskhold_capacity_free_slots") == 38
    assert metrics.value("taskhold_node_up") == 1
    assert all(metrics.types[name] == "gauge" for name in INFO_FIGURES)
    open_tasks = metrics.labelled("taskhold_open_tasks", "state")
    assert open_tasks == {
        "DRAFT": 1,
        "PENDING_FUNDING": 1,
        "FUNDED": 1,
        "CLAIMED": 0,
        "SUBMITTED": 0,
        "VERIFIED": 0,
        "DISPUTED": 0,
    }


async def test_a_finished_task_leaves_the_open_counts(stack_with: OpenStack) -> None:
    stack = await stack_with()
    employer = stack.client()
    task = await funded(stack, employer)
    await employer.cancel(task["task_id"])
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == TaskState.REFUNDED

    metrics = await scrape(stack)

    assert set(metrics.labelled("taskhold_open_tasks", "state").values()) == {0}
    assert metrics.value("taskhold_tasks_held") == 0


# -- admission refusals ------------------------------------------------------------------------


async def refuse_funding(stack: Stack) -> str:
    employer = stack.client()
    task = await created(stack, employer)
    with pytest.raises(TaskholdAPIError) as refused:
        await employer.request_funding(task["task_id"])
    assert refused.value.code == "insufficient_capacity"
    return str(refused.value.problem["limit"])


async def test_refusals_are_counted_by_limit_per_stack(stack_with: OpenStack) -> None:
    stack = await stack_with(htlc_slots=1, max_key_share=1.0)
    other = await stack_with(htlc_slots=1, max_key_share=1.0)
    before = await scrape(stack)
    assert before.types["taskhold_capacity_refusals_total"] == "counter"
    assert before.labelled("taskhold_capacity_refusals_total", "limit") == dict.fromkeys(LIMITS, 0)

    await funded(stack, stack.client())
    assert await refuse_funding(stack) == "htlc_slots"
    assert await refuse_funding(stack) == "htlc_slots"

    after = (await scrape(stack)).labelled("taskhold_capacity_refusals_total", "limit")
    assert after == {**dict.fromkeys(LIMITS, 0), "htlc_slots": 2}
    untouched = (await scrape(other)).labelled("taskhold_capacity_refusals_total", "limit")
    assert untouched == dict.fromkeys(LIMITS, 0)  # the count is the stack's, not the process's


# -- payouts waiting for outbound liquidity -------------------------------------------------------


async def test_a_payout_short_of_outbound_liquidity_shows_until_it_returns(
    stack_with: OpenStack,
) -> None:
    stack = await stack_with()
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    task_id, payout_msat = task["task_id"], task["payout_msat"]
    escrow, world = stack.world.escrow, stack.world
    left = payout_msat // 2
    drain = await world.employer.create_invoice(escrow.balance_msat - left)
    await escrow.send_payment(drain, max_fee_msat=0)
    assert escrow.balance_msat == left
    quiet = await scrape(stack)
    assert quiet.value("taskhold_payouts_waiting_for_liquidity") == 0
    assert quiet.value("taskhold_payout_liquidity_shortages_total") == 0

    await employer.approve(task_id)
    await stack.run_pass()

    short = await scrape(stack)
    assert short.value("taskhold_payouts_waiting_for_liquidity") == 1
    assert short.value("taskhold_payouts_waiting_for_liquidity_msat") == payout_msat
    assert short.value("taskhold_payout_liquidity_shortages_total") == 1
    assert short.types["taskhold_payout_liquidity_shortages_total"] == "counter"
    assert short.value("taskhold_node_outbound_msat") == left
    waiting = await employer.get_task(task_id)
    assert (waiting["state"], waiting["payout_failures"]) == ("VERIFIED", 0)  # not the worker's

    refill = await escrow.create_invoice(10 * payout_msat)
    await world.employer.send_payment(refill)
    stack.services.engine._retry_at.clear()  # past the backoff
    await stack.run_pass()
    await stack.settle_engine()
    assert (await employer.get_task(task_id))["state"] == "PAID"

    cleared = await scrape(stack)
    assert cleared.value("taskhold_payouts_waiting_for_liquidity") == 0
    assert cleared.value("taskhold_payouts_waiting_for_liquidity_msat") == 0
    assert cleared.value("taskhold_payout_liquidity_shortages_total") == 1  # a counter stays


# -- the node down --------------------------------------------------------------------------------


async def test_a_node_that_cannot_be_read_is_node_up_0_and_still_a_200(
    stack_with: OpenStack,
) -> None:
    stack = await stack_with()
    await funded(stack, stack.client())
    stack.world.escrow.unreachable = True

    down = await scrape(stack)

    assert down.value("taskhold_node_up") == 0
    assert not any(down.has(name) for name in NODE_METRICS)
    assert down.value("taskhold_tasks_held") == 1  # the database's figures still show
    assert down.value("taskhold_open_tasks", state="FUNDED") == 1

    stack.world.escrow.unreachable = False
    up = await scrape(stack)
    assert up.value("taskhold_node_up") == 1
    assert all(up.has(name) for name in NODE_METRICS)


async def test_a_node_that_never_answers_is_node_up_0(
    stack_with: OpenStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hanging node must not hang the scrape: its figures are dropped after the bound."""
    stack = await stack_with()
    never = asyncio.Event()

    async def hang() -> NodeCapacity:
        await never.wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(metrics, "NODE_READ_TIMEOUT_S", 0.01)
    monkeypatch.setattr(stack.services.engine.ctx.lightning, "capacity", hang)

    hung = await scrape(stack)

    assert hung.value("taskhold_node_up") == 0
    assert not any(hung.has(name) for name in NODE_METRICS)


ROUTE_TEMPLATES = {
    "/metrics",
    "/v1/info",
    "/v1/tasks",
    "/v1/tasks/{task_id}",
    *(f"/v1/tasks/{{task_id}}/{op_path(op)}" for op in ACTIONS if op != "create"),
}
"""What the request histogram's route label may say: templates, never a task's path."""

# -- nothing secret -------------------------------------------------------------------------------


async def test_the_metrics_name_no_task_key_hash_or_invoice(stack_with: OpenStack) -> None:
    stack = await stack_with(htlc_slots=1, max_key_share=1.0)
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    assert await refuse_funding(stack) == "htlc_slots"
    view = await employer.get_task(task["task_id"])

    text = (await stack.http.get("/metrics")).text

    labels = {value for _, labels in parse(text).samples for _, value in labels}
    routes = {value for value in labels if value.startswith("/")}
    assert routes <= ROUTE_TEMPLATES
    named = {
        *LIMITS,
        *(state.value for state in TaskState),
        *(kind.value for kind in PayoutKind),
        *stack.settings.relays,
        *METHODS,
        *routes,
        "unmatched",
    }
    others = labels - named
    assert all(re.fullmatch(r"[1-5]xx|\+Inf|[0-9.]+", value) for value in others), others
    secrets = {
        task["task_id"],
        employer.pubkey_hex,
        worker.pubkey_hex,
        stack.world.escrow.pubkey_hex,
        view["funding"]["payment_hash"],
        view["funding"]["payment_request"],
        "lnbcrt",
    }
    assert not [secret for secret in secrets if secret.lower() in text.lower()]


# -- through a lifecycle --------------------------------------------------------------------------


REQUESTS = "taskhold_http_request_duration_seconds"


def _count(scrape: Scrape, name: str, **labels: str) -> float:
    """A histogram series' observation count (0 before its first observation)."""
    key = (f"{name}_count", frozenset(labels.items()))
    return scrape.samples.get(key, 0.0)


async def test_the_figures_move_through_a_lifecycle(
    stack_with: OpenStack, relay: EmbeddedRelay
) -> None:
    """create, fund, claim, proof, approve, PAID on the simulator: every figure of the
    operator's console moves as the task does, and a failed payout attempt is counted."""
    stack = await stack_with(relays=[relay.url])
    employer, worker = stack.client(), stack.client()
    start = await scrape(stack)
    assert start.value("taskhold_intake_paused") == 0
    assert start.labelled("taskhold_payout_failures_total", "kind") == {
        "task_reward": 0,
        "deposit": 0,
    }
    assert start.value("taskhold_outbox_unacked_events", relay=relay.url) == 0
    assert start.types["taskhold_engine_tick_seconds"] == "histogram"
    ticks = _count(start, "taskhold_engine_tick_seconds")

    task = await created(stack, employer)
    task_id = task["task_id"]
    drafted = await scrape(stack)
    assert drafted.value("taskhold_open_tasks", state="DRAFT") == 1
    posts = _count(
        drafted,
        "taskhold_http_request_duration_seconds",
        method="POST",
        route="/v1/tasks",
        status="2xx",
    )
    assert posts == 1
    assert drafted.value("taskhold_outbox_unacked_events", relay=relay.url) >= 1
    assert drafted.value("taskhold_outbox_oldest_unacked_age_seconds", relay=relay.url) >= 0

    funding = (await employer.request_funding(task_id))["funding"]
    pending = await scrape(stack)
    assert pending.value("taskhold_open_tasks", state="PENDING_FUNDING") == 1
    assert pending.value("taskhold_tasks_awaiting_payment_msat") == AMOUNT_MSAT

    await stack.world.employer.send_payment(funding["payment_request"])
    await stack.settle_engine(1)
    held = await scrape(stack)
    assert held.value("taskhold_open_tasks", state="FUNDED") == 1
    assert held.value("taskhold_tasks_held_msat") == AMOUNT_MSAT
    slots = held.value("taskhold_node_htlc_slots_free")
    assert slots == start.value("taskhold_node_htlc_slots_free") - 1
    assert _count(held, "taskhold_engine_tick_seconds") > ticks

    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
    stack.world.network.fail_payments_to(stack.world.worker)
    await employer.approve(task_id)
    await stack.run_pass()
    failing = await scrape(stack)
    assert failing.value("taskhold_payout_failures_total", kind="task_reward") == 1
    assert failing.value("taskhold_open_tasks", state="VERIFIED") == 1
    approves = _count(
        failing,
        REQUESTS,
        method="POST",
        route="/v1/tasks/{task_id}/approve",
        status="2xx",
    )
    assert approves == 1

    stack.world.network.clear_failures()  # the route comes back
    stack.services.engine._retry_at.clear()
    await stack.run_pass()
    await stack.settle_engine()
    assert (await employer.get_task(task_id))["state"] == "PAID"
    paid = await scrape(stack)
    assert set(paid.labelled("taskhold_open_tasks", "state").values()) == {0}
    assert paid.value("taskhold_tasks_held_msat") == 0
    assert paid.value("taskhold_node_htlc_slots_free") == slots + 1
    assert paid.value("taskhold_payout_failures_total", kind="task_reward") == 1  # a counter
    assert paid.value("taskhold_outbox_unacked_events", relay=relay.url) > 0

    publisher = stack.services.publisher
    assert publisher is not None
    while (await publisher.run_once()).claimed:
        pass
    published = await scrape(stack)
    assert published.value("taskhold_outbox_unacked_events", relay=relay.url) == 0
    assert published.value("taskhold_outbox_oldest_unacked_age_seconds", relay=relay.url) == 0


async def test_pausing_intake_shows(stack_with: OpenStack) -> None:
    stack = await stack_with()
    await set_intake(stack.services.store, paused=True, actor="admin:tester")
    assert (await scrape(stack)).value("taskhold_intake_paused") == 1
    await set_intake(stack.services.store, paused=False, actor="admin:tester")
    assert (await scrape(stack)).value("taskhold_intake_paused") == 0


async def test_an_unknown_path_is_timed_as_unmatched(stack_with: OpenStack) -> None:
    stack = await stack_with()
    secret_looking = "/v1/nothing/" + "ab" * 32
    assert (await stack.http.get(secret_looking)).status_code == 404

    text = (await stack.http.get("/metrics")).text

    assert "ab" * 32 not in text
    assert (
        _count(
            parse(text),
            "taskhold_http_request_duration_seconds",
            method="GET",
            route="unmatched",
            status="4xx",
        )
        == 1
    )
