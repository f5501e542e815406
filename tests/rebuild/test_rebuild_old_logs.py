"""A log written before the task gained fields (``proofs_refused``, ``dispute_opened_at``,
``hold_settled_at``) still rebuilds and audits clean: its entries hash the state without them,
while today's reducer fills them in on replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.deposit_flows import give_worker_wallet_money, locked_deposit, stranger
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_builders import task_in
from support.task_flows import funded, read_log, tag

from taskhold.audit import audit_log
from taskhold.client import TaskholdAPIError
from taskhold.nostr.entries import state_hash
from taskhold.nostr.state_forms import LATER_FIELDS, matches_state
from taskhold.rebuild.replay import rebuild_from_entries
from taskhold.store.codec import task_to_data
from taskhold.tasks import TaskState

DEALS = (frozenset({"proofs_refused", "dispute_opened_at"}), frozenset[str]())
LIVE_SETTLE = (frozenset({"hold_settled_at"}), frozenset({"hold_settled_at"}))
FAIR_DEAL = LATER_FIELDS[2]
"""Claim modes, splits, agreements and the rejection policy: added together."""
SERIES = LATER_FIELDS[3]
"""Milestone series: the series fields stamped at creation."""
RENEWAL = LATER_FIELDS[4]
"""Funding rounds: the renewal's fields."""


def older_writer(*missing: tuple[frozenset[str], frozenset[str]]) -> Any:
    """``state_hash`` as a writer from before the ``missing`` fields existed computed it."""
    task_fields = frozenset().union(*(m[0] for m in missing))
    deposit_fields = frozenset().union(*(m[1] for m in missing))

    def older_state_hash(data: dict[str, Any]) -> str:
        older = {name: value for name, value in data.items() if name not in task_fields}
        older["deposits"] = [
            {name: value for name, value in d.items() if name not in deposit_fields}
            for d in data["deposits"]
        ]
        return state_hash(older)

    return older_state_hash


async def _disputed_and_deposit_tasks(stack: Stack) -> None:
    """A task with a refused proof and a dispute an arbiter decided, and one a stranger's
    deposit stood for; both paid."""
    arbiter = stack.client()
    stack.services.settings.arbiters = [arbiter.pubkey_hex]
    employer, worker = stack.client(), stack.client()
    task = await funded(stack, employer)
    task_id = task["task_id"]
    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    with pytest.raises(TaskholdAPIError):
        await worker.submit_proof(task_id, {"url": "not a url"}, invoice)
    await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
    await employer.reject(task_id, "I changed my mind")
    await worker.open_dispute(task_id, "the proof meets the spec")
    await arbiter.resolve_dispute(task_id, "worker", "it does")

    await give_worker_wallet_money(stack)
    newcomer = stranger(stack)
    other = await funded(stack, employer)
    await locked_deposit(stack, newcomer, other["task_id"], stack.world.worker)
    await newcomer.claim(other["task_id"])
    invoice = await stack.world.worker.create_invoice(other["payout_msat"], expiry_seconds=86_400)
    await newcomer.submit_proof(other["task_id"], {"url": "https://example.org/2"}, invoice)
    await employer.approve(other["task_id"])
    await stack.settle_engine()
    for done in (task_id, other["task_id"]):
        assert (await employer.get_task(done))["state"] == TaskState.PAID.value


@pytest.mark.parametrize(
    "missing",
    [
        (DEALS,),
        (LIVE_SETTLE,),
        (DEALS, LIVE_SETTLE),
        (FAIR_DEAL,),
        (SERIES,),
        (RENEWAL,),
        (DEALS, LIVE_SETTLE, FAIR_DEAL, SERIES, RENEWAL),
    ],
    ids=[
        "before-deals",
        "before-live-settle",
        "before-both",
        "before-fair-deal",
        "before-series",
        "before-renewal",
        "before-all",
    ],
)
async def test_a_log_from_before_the_new_task_fields_rebuilds_and_audits(
    tmp_path: Path,
    database_url: str,
    database_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    missing: tuple[tuple[frozenset[str], frozenset[str]], ...],
) -> None:
    settings = stack_settings(tmp_path, database_url, pow_max_bits=8, reputation_max_staleness_s=0)
    original = await open_stack(settings)
    try:
        with monkeypatch.context() as patched:
            patched.setattr("taskhold.publiclog.writer.state_hash", older_writer(*missing))
            await _disputed_and_deposit_tasks(original)
        log = await read_log(original)
        operator = original.services.signer.get_public_key()
    finally:
        await close_stack(original)
    ops = {tag(entry, "op") for entry in log}
    assert {"ProofRefused", "DisputeOpened", "DepositLocked", "ReleaseCompleted"} <= ops

    result = audit_log(log, operator)
    assert result.clean, [finding.to_json() for finding in result.findings]
    async with new_database(database_kind, tmp_path / "rebuilt") as url:
        rebuilt = await open_stack(
            settings.model_copy(update={"database_url": url}), world=original.world
        )
        try:
            report = await rebuild_from_entries(
                rebuilt.services.store, log, operator_pubkey=operator
            )
            assert report.entries == len(log)
            assert report.states == {"PAID": 2}
        finally:
            await close_stack(rebuilt)


def test_only_whole_groups_of_later_fields_may_be_missing_from_the_hashed_state() -> None:
    data = task_to_data(task_in(TaskState.VERIFIED))
    assert matches_state(data, state_hash(data))
    assert matches_state(data, older_writer(DEALS)(data))
    assert matches_state(data, older_writer(DEALS, LIVE_SETTLE)(data))
    assert not matches_state(data, state_hash({**data, "title": "another"}))
    without_one = {name: value for name, value in data.items() if name != "proofs_refused"}
    assert not matches_state(data, state_hash(without_one))  # half a group: no writer did that
    dropped = {name: value for name, value in data.items() if name != "payout_failures"}
    assert not matches_state(data, state_hash(dropped))
    assert not matches_state(data, None)
    assert matches_state(data, older_writer(FAIR_DEAL)(data))
    half = {name: value for name, value in data.items() if name != "barred_workers"}
    assert not matches_state(data, state_hash(half))
    assert matches_state(data, older_writer(FAIR_DEAL, SERIES, RENEWAL)(data))
    no_round = {name: value for name, value in data.items() if name != "renewal_round"}
    assert not matches_state(data, state_hash(no_round))
