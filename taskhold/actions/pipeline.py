"""The write pipeline every participant request goes through.

verify the signed envelope → return the first answer for a retried idempotency key → refuse a
replayed event id → lock the task, decide, record the transition, the request and the answer in
ONE transaction → if the write changed what the escrow engine owes (``Tx.wakes_engine``), start
the release it made owed (an approval) or wake the engine for a pass.
A refusal anywhere rolls everything back: nothing is half-written.

The first answer is kept as a small reference (task id, version, log head and the handler's
extra members), not as the rendered task: every write would otherwise store a copy of the whole
task, proof and deposits included. A retry re-renders the task as it was at that version from
its history, so it gets the same answer even after the task moved on. A retry of the very
event the first answer was for gets it even once its ``created_at`` left the freshness window;
any other stale event is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from taskhold.envelope import SignedRequest, verify_signed_request
from taskhold.errors import Conflict, Invalid, NotFound, RefusalCode
from taskhold.escrow import EscrowContext, EscrowEngine
from taskhold.nostr import NostrKeys
from taskhold.store import Tx, WriteConflict
from taskhold.tasks import Task, decide, replay
from taskhold.tasks.commands import Command
from taskhold.tasks.events import event_from_dict

if TYPE_CHECKING:
    from taskhold.reputation.gate import ReputationWrites

__all__ = [
    "Handler",
    "Outcome",
    "TxGate",
    "WriteContext",
    "WriteGate",
    "apply_command",
    "perform",
]


class WriteGate(Protocol):
    """A check every verified write passes before any database work (rate limit, proof of
    work); it refuses by raising a Refusal."""

    async def admit(self, request: SignedRequest) -> None: ...


class TxGate(Protocol):
    """A check every new write passes inside its own transaction, before its task is loaded
    (a key the operator blocked): database state, read at no extra transaction's cost. A
    retry of a write already answered gets its first answer without it."""

    async def admit_in(self, tx: Tx, request: SignedRequest) -> None: ...


@dataclass
class WriteContext:
    escrow: EscrowContext
    engine: EscrowEngine | None
    request_kind: int = 3912
    proof_kind: int = 3911
    gates: Sequence[WriteGate] = ()
    tx_gates: Sequence[TxGate] = ()
    reputation: ReputationWrites | None = None
    """Review windows by score and the review desk; None without the reputation indexer."""
    operator_keys: NostrKeys | None = None
    """Opens the operator's sealed copies of private content (``.private``), in memory only."""
    previous_operator_keys: tuple[NostrKeys, ...] = ()
    """Keys the operator rotated away from: copies sealed to them before still open."""

    @property
    def arbiters(self) -> frozenset[str]:
        return frozenset(self.escrow.settings.arbiters)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a handler did: the task after it, and the HTTP status of the answer."""

    task: Task
    status: int = 200
    extra: Mapping[str, Any] | None = None
    """Members added to the rendered answer (e.g. the accepted review)."""
    problem: dict[str, Any] | None = None
    """A refusal that is itself recorded (a proof's failed verdict): the answer's body."""
    also: tuple[Task, ...] = ()
    """Other tasks the write created (the later milestones of a series): watched too."""


Handler = Callable[[WriteContext, Tx, SignedRequest, Task | None], Awaitable[Outcome]]
"""One action: inside the open transaction, with the task locked (None for create)."""

MAX_ATTEMPTS = 3


async def perform(
    ctx: WriteContext,
    *,
    op: str,
    handler: Handler,
    raw_event: object,
    task_id: str | None,
    idempotency_key: str | None,
    render: Callable[[Task, str | None], dict[str, Any]],
    proof: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Run one signed write end to end; returns ``(status, body)`` or raises a Refusal."""
    try:
        request = _verified(ctx, raw_event, op, task_id, proof)
    except Invalid as refused:
        if refused.code != "stale_request":
            raise
        retried = await _late_retry(ctx, raw_event, op, task_id, proof, idempotency_key, render)
        if retried is None:
            raise
        return retried
    for gate in ctx.gates:  # rate limits, proof of work: before any database work
        await gate.admit(request)
    key = _checked_key(idempotency_key)
    signed_keys = [t[1] for t in request.raw["tags"] if len(t) > 1 and t[0] == "key"]
    if signed_keys and signed_keys != [key]:
        raise Invalid(
            "the Idempotency-Key header differs from the key signed in the request's key tag",
            code=RefusalCode.IDEMPOTENCY_KEY_MISMATCH,
        )
    for attempt in range(MAX_ATTEMPTS):
        try:
            return await _perform_once(ctx, op, handler, request, key, render)
        except WriteConflict:
            if attempt == MAX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _verified(
    ctx: WriteContext,
    raw_event: object,
    op: str,
    task_id: str | None,
    proof: bool,
    *,
    fresh: bool = True,
) -> SignedRequest:
    """The checked request; ``fresh=False`` leaves out the ``created_at`` window."""
    settings = ctx.escrow.settings
    return verify_signed_request(
        raw_event,
        op=op,
        kinds=frozenset({ctx.proof_kind if proof else ctx.request_kind}),
        task_id=task_id,
        now=ctx.escrow.now(),
        window_s=settings.request_window_s if fresh else ANY_AGE_S,
        max_content_bytes=settings.max_request_bytes,
    )


ANY_AGE_S = 2**63
"""A ``created_at`` window no event falls outside of."""


async def _late_retry(
    ctx: WriteContext,
    raw_event: object,
    op: str,
    task_id: str | None,
    proof: bool,
    idempotency_key: str | None,
    render: Callable[[Task, str | None], dict[str, Any]],
) -> tuple[int, dict[str, Any]] | None:
    """The first answer to an event too old to be accepted now, if this very event (same id,
    signed by the same key) was accepted under this Idempotency-Key: a client retrying after a
    lost answer gets it, however late. None otherwise (the freshness refusal stands)."""
    request = _verified(ctx, raw_event, op, task_id, proof, fresh=False)
    if idempotency_key is None:
        return None
    async with ctx.escrow.store.transaction() as tx:
        stored = await tx.stored_response(request.pubkey, idempotency_key)
    if stored is None or stored.fingerprint != request.event_id:
        return None
    for gate in ctx.gates:  # as for a retry in time; any other stale event is refused as stale
        await gate.admit(request)
    async with ctx.escrow.store.transaction() as tx:
        return stored.status_code, await _first_answer(tx, stored.body, render)


async def _perform_once(
    ctx: WriteContext,
    op: str,
    handler: Handler,
    request: SignedRequest,
    key: str,
    render: Callable[[Task, str | None], dict[str, Any]],
) -> tuple[int, dict[str, Any]]:
    store = ctx.escrow.store
    async with store.transaction() as tx:
        stored = await tx.stored_response(request.pubkey, key)
        if stored is not None:
            if stored.fingerprint != request.event_id:
                raise Invalid(
                    "this Idempotency-Key was already used for a different request;"
                    " use a fresh key for a new request",
                    code=RefusalCode.IDEMPOTENCY_KEY_REUSED,
                )
            return stored.status_code, await _first_answer(tx, stored.body, render)
        if await tx.request_seen(request.event_id):
            raise Conflict(
                "this signed request was already used; sign a new one",
                code=RefusalCode.REPLAYED_REQUEST,
            )
        for gate in ctx.tx_gates:
            await gate.admit_in(tx, request)
        task: Task | None = None
        if request.task_id is not None:
            task = await tx.load_task(request.task_id, for_update=True)
            if task is None:
                raise NotFound(f"no task {request.task_id}")
        outcome = await handler(ctx, tx, request, task)
        now = ctx.escrow.now()
        await tx.record_request(
            event_id=request.event_id,
            pubkey=request.pubkey,
            op=op,
            task_id=outcome.task.task_id,
            at=now,
        )
        # The log entries are signed here (Tx.write_log), once the rest of the write is in:
        # from now to the commit this write holds the log's head.
        head = await tx.log_head(outcome.task.task_id)
        body = outcome.problem or render(outcome.task, head)
        if outcome.extra:
            body = {**body, **outcome.extra}
        kept = outcome.problem or _reference(outcome, head)
        await tx.store_response(request.pubkey, key, request.event_id, outcome.status, kept, now)
    if ctx.engine is not None:
        for written in (outcome.task, *outcome.also):
            if written.payment_hash_hex is not None:
                ctx.engine.watch(written.task_id, written.payment_hash_hex)
        ctx.engine.watch_deposits(outcome.task)
        if tx.wakes_engine:  # work owed changed: pay a release now, or run a pass now
            _start_owed(ctx.engine, outcome)
    return outcome.status, body


def _start_owed(engine: EscrowEngine, outcome: Outcome) -> None:
    """Start the payment job of a release the write made owed (an approval) straight away; wake
    a pass for anything else. A write of one task whose release job now runs wakes no pass:
    the pass would only find that job running, and its queries would compete with the job's
    at the database; the job wakes a pass itself when it ends."""
    started = [engine.release_now(written) for written in (outcome.task, *outcome.also)]
    if not (outcome.also == () and started[0]):
        engine.notify()


_REFERENCE = "answer_of"


def _reference(outcome: Outcome, head: str | None) -> dict[str, Any]:
    """What the idempotency record keeps of a successful answer (see the module doc)."""
    task = outcome.task
    return {
        _REFERENCE: {"task_id": task.task_id, "version": task.version, "log_head": head},
        **(outcome.extra or {}),
    }


async def _first_answer(
    tx: Tx, kept: dict[str, Any], render: Callable[[Task, str | None], dict[str, Any]]
) -> dict[str, Any]:
    """The body a retried write gets: a kept problem as it was, a reference re-rendered."""
    reference = kept.get(_REFERENCE)
    if not isinstance(reference, dict):
        return kept  # a problem (or an answer kept whole before references existed)
    rows = await tx.transitions(reference["task_id"])
    task = replay(event_from_dict(row.event) for row in rows[: reference["version"]])
    assert task is not None, "a referenced answer names a task with history"
    extra = {name: value for name, value in kept.items() if name != _REFERENCE}
    return {**render(task, reference["log_head"]), **extra}


def _checked_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise Invalid(
            "send an Idempotency-Key header (any unique string, e.g. a UUID) with every write",
            code=RefusalCode.IDEMPOTENCY_KEY_MISSING,
            status=400,
        )
    if len(key) > 128 or not key.isprintable():
        raise Invalid("Idempotency-Key must be at most 128 printable characters", status=400)
    return key


async def apply_command(
    ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None, command: Command
) -> Task:
    """Decide ``command`` on the locked task and record it with the signed request embedded."""
    events = decide(task, command, ctx.arbiters)
    return await tx.append(task, events, request=request.raw)
