"""The auditor's checks over a list of event dicts: pure, no I/O, written from
``docs/public-log.md`` ("Checks an auditor makes") and nostr.md section 4.4.

Each event is verified on its own first (shape, NIP-01 id, BIP-340 signature, kind), then its
author against the operator key current at its ``gseq`` (the log starts with the key the auditor
is given; a ``KeyRotated`` entry signed by the current key hands it to the key it names); only
events that pass take a place in the log. The log as a whole is then checked: gap-free
``gseq`` with one entry per number, the ``gprev`` chain, non-decreasing ``created_at``, each
task's ``seq``/``prev`` chain, the preimage of every release against its funding, the proof
of every payout against the terms its payee signed (``payouts.py``), the checkpoint's head, and
deletions the operator asked relays for.
"""

from __future__ import annotations

import gc
import hashlib
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, cast

from .entry import KEY_ROTATED, AuditKinds, Entry
from .findings import Finding, FindingKind, Location
from .nip01 import Verdict, is_hex64, verify_event
from .parallel import examine_all
from .payouts import PayoutCheck, proofs_required_from
from .series import check_series

__all__ = ["CHECKPOINT_D", "AuditResult", "Summary", "audit_log"]

CHECKPOINT_D = "taskhold-log-head"
_DELETION_KIND = 5


@dataclass(frozen=True, slots=True)
class Summary:
    events_received: int
    entries: int
    tasks: int
    tasks_by_final_op: Mapping[str, int]
    head_gseq: int | None
    head_id: str | None
    checkpoint_gseq: int | None
    payouts: int = 0
    """Payouts the log records paid (a task's reward, each split share, each deposit payout)."""
    payouts_proven: int = 0
    """Those tied by their preimage to an invoice hash and amount their payee signed
    (``audit/payouts.py``)."""

    @property
    def payout_proven(self) -> bool:
        """Every payout the log records paid is proven (true for a log with none)."""
        return self.payouts_proven == self.payouts

    def to_json(self) -> dict[str, Any]:
        return {
            "events_received": self.events_received,
            "entries": self.entries,
            "tasks": self.tasks,
            "tasks_by_final_op": dict(sorted(self.tasks_by_final_op.items())),
            "head_gseq": self.head_gseq,
            "head_id": self.head_id,
            "checkpoint_gseq": self.checkpoint_gseq,
            "payouts": self.payouts,
            "payouts_proven": self.payouts_proven,
            "payout_proven": self.payout_proven,
        }


@dataclass(frozen=True, slots=True)
class AuditResult:
    findings: tuple[Finding, ...]
    summary: Summary
    operator_keys: tuple[str, ...] = ()
    """The key the log starts with and every key a verified ``KeyRotated`` entry handed it to,
    in that order: where the operator's receipts and review records are to be fetched."""

    @property
    def clean(self) -> bool:
        return not self.findings


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    id: str
    gseq: int
    head: str


def _claimed_gseq(event: Mapping[str, Any]) -> int | None:
    """The ``gseq`` an unverifiable event claims, only to say where it would have been."""
    tags = event.get("tags")
    for tag in tags if isinstance(tags, list) else []:
        if isinstance(tag, list) and len(tag) >= 2 and tag[0] == "gseq":
            value = tag[1]
            return int(value) if isinstance(value, str) and value.isdigit() else None
    return None


def _authentic(
    events: Iterable[object],
    authors: Collection[str] | None,
    kind: int,
    what: str,
    findings: set[Finding],
    verdicts: Iterable[Verdict] | None = None,
) -> list[Mapping[str, Any]]:
    """The events that verify, are of ``kind`` and by one of ``authors`` (any author when
    None), once per id. ``verdicts``, when given, are the events' ``verify_event`` verdicts."""
    kept: dict[str, Mapping[str, Any]] = {}
    events = list(events)
    verdicts = map(verify_event, events) if verdicts is None else verdicts
    for event, verdict in zip(events, verdicts, strict=True):
        if verdict is Verdict.OK:
            event = cast("Mapping[str, Any]", event)  # verify_event saw it is one
            if (authors is None or event["pubkey"] in authors) and event["kind"] == kind:
                kept.setdefault(event["id"], event)
                continue
        findings.add(_refusal(event, verdict, authors, kind, what))
    return list(kept.values())


def _refusal(
    event: object, verdict: Verdict, authors: Collection[str] | None, kind: int, what: str
) -> Finding:
    """Why ``event`` takes no place in the log, located where it claims to belong."""
    raw_id = event.get("id") if isinstance(event, Mapping) else None
    event_id = raw_id if isinstance(raw_id, str) else None
    gseq = _claimed_gseq(event) if isinstance(event, Mapping) else None
    where = Location(gseq=gseq, event_id=event_id)
    ids = (event_id,) if event_id else ()
    if verdict is not Verdict.OK:
        return Finding(FindingKind(verdict.value), where, f"{what} does not verify: {verdict}", ids)
    assert isinstance(event, Mapping)
    if authors is not None and event["pubkey"] not in authors:
        detail = f"{what} signed by {event['pubkey']}, not the operator"
        return Finding(FindingKind.WRONG_AUTHOR, where, detail, ids)
    detail = f"kind {event['kind']} where a {what} (kind {kind}) was expected"
    return Finding(FindingKind.MALFORMED, where, detail, ids)


def _first_value(event: Mapping[str, Any], name: str) -> str | None:
    """The value of the first ``name`` tag with one (tags of a verified event)."""
    for tag in event["tags"]:
        if len(tag) >= 2 and tag[0] == name:
            value: str = tag[1]
            return value
    return None


def _handed_to(event: Mapping[str, Any]) -> str | None:
    """The key a ``KeyRotated`` entry names as the next operator key, if it names one."""
    if _first_value(event, "op") != KEY_ROTATED:
        return None
    new_key = _first_value(event, "new_key")
    return new_key if is_hex64(new_key) else None


def _by_current_key(
    events: list[Mapping[str, Any]],
    operator: str,
    findings: set[Finding],
    read: Mapping[str, Entry | None] | None = None,
) -> tuple[list[Mapping[str, Any]], tuple[str, ...]]:
    """``_walk_key_chain``'s answer, taken in a few passes in C for the usual log (see
    ``_one_key_log``)."""
    if read:
        kept = _one_key_log(events, operator, read)
        if kept is not None:
            return kept, (operator,)
    return _walk_key_chain(events, operator, findings, read)


_GSEQ = attrgetter("gseq")
_OP = attrgetter("op")


def _one_key_log(
    events: list[Mapping[str, Any]], operator: str, read: Mapping[str, Entry | None]
) -> list[Mapping[str, Any]] | None:
    """What ``_walk_key_chain`` keeps when every event was placed by ``parse_entry``, all are
    signed by ``operator`` and none is a rotation: the key never changes hands, nothing is
    refused, and the events are kept by ``gseq``, those of one ``gseq`` as they came (a stable
    sort). None for any other log, which the walk reads. On a clean log this costs about
    1.2 µs an entry, the walk's loop over groups and their sets of keys about 2.8."""
    entries = [read.get(event["id"]) for event in events]
    if None in entries or {event["pubkey"] for event in events} != {operator}:
        return None
    placed = cast("list[Entry]", entries)
    if KEY_ROTATED in set(map(_OP, placed)):
        return None
    gseqs = list(map(_GSEQ, placed))
    if gseqs == sorted(gseqs):
        return list(events)
    return [events[index] for index in sorted(range(len(events)), key=gseqs.__getitem__)]


def _walk_key_chain(
    events: list[Mapping[str, Any]],
    operator: str,
    findings: set[Finding],
    read: Mapping[str, Entry | None] | None = None,
) -> tuple[list[Mapping[str, Any]], tuple[str, ...]]:
    """The entries signed by the operator key current at their ``gseq``, and every key the log
    was handed to. The log starts with ``operator``; a ``KeyRotated`` entry signed by the
    current key makes its ``new_key`` the current key from the next ``gseq`` on. Any other
    author is ``wrong_author`` and the entry takes no place in the log.

    ``read``: the entries ``parse_entry`` placed, by id. Such an entry's ``gseq`` is the value
    of its first ``gseq`` tag with one, digits only: what ``_claimed_gseq`` reads again; its
    ``op`` and ``new_key`` are those of its first tags with a value, as ``_handed_to`` reads."""
    placed: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    unplaced: list[Mapping[str, Any]] = []
    read = read or {}
    for event in events:
        entry = read.get(event["id"])
        gseq = entry.gseq if entry is not None else _claimed_gseq(event)
        (placed[gseq] if gseq is not None else unplaced).append(event)
    current, chain = {operator}, {operator: None}
    kept: list[Mapping[str, Any]] = []

    def refuse(event: Mapping[str, Any], gseq: int | None, keys: Collection[str]) -> None:
        where = Location(gseq=gseq, event_id=event["id"])
        named = ", ".join(sorted(keys))
        detail = f"log entry signed by {event['pubkey']}, not the operator key ({named})"
        findings.add(Finding(FindingKind.WRONG_AUTHOR, where, detail, (event["id"],)))

    for gseq in sorted(placed):
        handed: set[str] = set()
        for event in placed[gseq]:
            if event["pubkey"] not in current:
                refuse(event, gseq, current)
                continue
            kept.append(event)
            entry = read.get(event["id"])
            if entry is None:
                handed.add(_handed_to(event) or event["pubkey"])
            elif entry.op == KEY_ROTATED and is_hex64(new_key := entry.values.get("new_key", "")):
                handed.add(new_key)  # what _handed_to reads from the tags, already read
            else:
                handed.add(event["pubkey"])
        if handed:
            current = handed
            if not handed <= chain.keys():  # a key handed on for the first time
                chain.update(dict.fromkeys(sorted(handed)))
    for event in unplaced:  # no readable gseq: reported by parse_entry if the author is known
        if event["pubkey"] in chain:
            kept.append(event)
        else:
            refuse(event, None, chain)
    return kept, tuple(chain)


def _checkpoint(
    events: Iterable[object], keys: Collection[str], kinds: AuditKinds, findings: set[Finding]
) -> _Checkpoint | None:
    best: _Checkpoint | None = None
    for event in _authentic(events, keys, kinds.checkpoint, "checkpoint", findings):
        values = {tag[0]: tag[1] for tag in reversed(event["tags"]) if len(tag) >= 2}
        if values.get("d") != CHECKPOINT_D:
            continue  # another of the operator's checkpoints (the audit-log head): not the log's
        gseq, head, count = values.get("gseq", ""), values.get("head"), values.get("count", "")
        if not gseq.isdigit() or not is_hex64(head) or count != str(int(gseq) + 1):
            where = Location(event_id=event["id"])
            detail = "checkpoint needs d, gseq, head and count = gseq + 1"
            findings.add(Finding(FindingKind.MALFORMED, where, detail, (event["id"],)))
            continue
        assert head is not None
        if best is None or int(gseq) > best.gseq:
            best = _Checkpoint(event["id"], int(gseq), head)
    return best


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


def _global_chain(by_gseq: Mapping[int, list[Entry]], last: int, findings: set[Finding]) -> None:
    missing = [g for g in range(last + 1) if g not in by_gseq]
    for first, final in _ranges(missing):
        count = final - first + 1
        detail = f"{count} entr{'y' if count == 1 else 'ies'} missing from the operator-wide log"
        findings.add(Finding(FindingKind.GAP, Location(gseq=first, gseq_last=final), detail))
    previous: list[Entry] = []
    for gseq in sorted(by_gseq):
        group = by_gseq[gseq]
        if len(group) > 1:
            ids = tuple(sorted(entry.id for entry in group))
            detail = f"{len(group)} different operator-signed entries for one gseq"
            findings.add(Finding(FindingKind.EQUIVOCATION, Location(gseq=gseq), detail, ids))
        before = previous if previous and previous[0].gseq == gseq - 1 else []
        if len(previous) == 1:  # nearly always: no equivocation
            before_ids: Collection[str] = (before[0].id,) if before else ()
            earliest: int | None = previous[0].created_at
        else:
            before_ids = {other.id for other in before}
            earliest = min(other.created_at for other in previous) if previous else None
        for entry in group:
            broken = bool(before) and entry.gprev not in before_ids
            backwards = earliest is not None and entry.created_at < earliest
            if not broken and not backwards:
                continue
            where = entry.location()
            if broken:
                detail = f"gprev {entry.gprev} is not the id of entry {gseq - 1}"
                findings.add(Finding(FindingKind.BROKEN_GPREV, where, detail, (entry.id,)))
            if backwards:
                detail = (
                    f"created_at {entry.created_at} is before {previous[0].created_at} "
                    f"of entry {previous[0].gseq}"
                )
                findings.add(Finding(FindingKind.TIME_WENT_BACKWARDS, where, detail, (entry.id,)))
        previous = group


def _task_chain(entries: list[Entry], findings: set[Finding], payouts: PayoutCheck) -> None:
    """``seq`` runs 1, 2, … in ``gseq`` order and each ``prev`` names the entry before. An entry
    signed twice for one ``seq`` is equivocation; either twin may be the one followed."""
    expected, last_ids = 1, set[str]()
    by_seq: dict[int, Entry] = {}
    funding_hash: str | None = None
    deposit_hashes: dict[str, str] = {}
    split = _SplitCheck()
    rounds = _RoundCheck()
    for entry in entries:
        twin = by_seq.get(entry.seq)
        if twin is not None:
            if twin.gseq != entry.gseq:
                ids = (twin.id, entry.id)
                detail = f"seq {entry.seq} signed twice, at gseq {twin.gseq} and {entry.gseq}"
                findings.add(Finding(FindingKind.EQUIVOCATION, entry.location(), detail, ids))
            if twin.seq == expected - 1:
                last_ids.add(entry.id)
            payouts.signed(entry)
            continue
        by_seq[entry.seq] = entry
        if entry.seq != expected:
            detail = f"expected seq {expected}, found {entry.seq}"
            findings.add(Finding(FindingKind.SEQ_GAP, entry.location(), detail, (entry.id,)))
        elif last_ids and entry.prev not in last_ids:
            detail = f"prev {entry.prev} is not the id of seq {expected - 1}"
            named = (entry.id, *sorted(last_ids))
            findings.add(Finding(FindingKind.BROKEN_PREV, entry.location(), detail, named))
        expected, last_ids = entry.seq + 1, {entry.id}
        rounds.see(entry, findings)
        payouts.see(entry, findings)
        if entry.op in ("FundingRequested", "Renewed"):  # the round settled from now on
            funding_hash = entry.values.get("payment_hash")
        elif entry.op in ("ReleaseCompleted", "HoldSettledUnderLivePayout", "SplitCompleted"):
            _check_preimage(entry, funding_hash, findings)
            if entry.op == "SplitCompleted":
                split.completed(entry, findings)
        elif entry.op in ("TaskCreated", "SplitDecided", "SplitSharePaid"):
            split.see(entry, findings)
        elif entry.op == "DepositRequested":
            deposit_hashes[entry.values.get("depositor", "")] = entry.values.get("deposit_hash", "")
        elif entry.op in ("DepositPaidOut", "DepositSettledUnderLivePayout"):
            paid = deposit_hashes.get(entry.values.get("depositor", ""))
            _check_preimage(entry, paid, findings, what="deposit")


_FACTS_AFTER_THE_END = frozenset({"SwapReported"})
"""Entries that record what a party says happened elsewhere (a swap's claim or refund txid),
often after the task ended: they are not how the task ended."""


def _final_op(entries: list[Entry]) -> str:
    """How the task ended (or where it stands): its last entry that is not a reported fact."""
    for entry in reversed(entries):
        if entry.op not in _FACTS_AFTER_THE_END:
            return entry.op
    return entries[-1].op


_SETTLES = frozenset({"ReleaseCompleted", "HoldSettledUnderLivePayout", "SplitCompleted"})
_ENDS_FUNDING = _SETTLES | {"RefundCompleted", "RefundOrdered"}


@dataclass
class _RoundCheck:
    """A task's funding rounds, entry by entry: a renewal is opened only while the task is held
    and nothing ended it, a round is taken (``Renewed``) only after it was opened and under its
    own hash, and at most one round is ever settled (the settlement's preimage is checked
    against the current round's hash by ``_check_preimage``)."""

    held: bool = False
    ended: bool = False
    renewal_hash: str | None = None
    settled: set[str] = field(default_factory=set)
    """The preimages settled with: a fallback settle and its release name the same one."""

    def see(self, entry: Entry, findings: set[Finding]) -> None:
        values = entry.values
        detail = None
        if entry.op == "FundingAccepted":
            self.held = True
        elif entry.op in _ENDS_FUNDING:
            self.ended = True
            if entry.op in _SETTLES:
                self.settled.add(values.get("preimage", ""))
                if len(self.settled) > 1:
                    detail = "a second round settled: only one funding round may be"
        elif entry.op == "RenewalOpened":
            if not self.held or self.ended:
                detail = "a renewal opened while the task was not held, or after it ended"
            elif self.renewal_hash is not None:
                detail = "a renewal opened while another was still open"
            self.renewal_hash = values.get("renewal_hash")
        elif entry.op == "Renewed":
            if not self.held or self.ended:
                detail = "a renewal taken while the task was not held, or after it ended"
            elif self.renewal_hash is None or values.get("payment_hash") != self.renewal_hash:
                detail = "the renewed round's hash is not the one the renewal opened"
            self.renewal_hash = None
        elif entry.op == "RoundCancelled" and values.get("cancelled_hash") == self.renewal_hash:
            self.renewal_hash = None
        if detail is not None:
            findings.add(Finding(FindingKind.BAD_ROUND, entry.location(), detail, (entry.id,)))


@dataclass
class _SplitCheck:
    """A split's money, entry by entry: the shares plus the fee make the amount the task was
    created with, each share is paid once with a preimage of its hash, and the settlement names
    the shares that were paid."""

    amount_msat: int | None = None
    paid: dict[str, str] | None = None

    def see(self, entry: Entry, findings: set[Finding]) -> None:
        values = entry.values
        if entry.op == "TaskCreated":
            self.amount_msat = entry.amount_msat
        elif entry.op == "SplitDecided":
            parts = [values.get(name, "") for name in ("worker_msat", "employer_msat", "fee_msat")]
            total = sum(int(part) for part in parts if part.isdigit())
            if self.amount_msat is None or total != self.amount_msat:
                detail = f"the shares plus the fee make {total} msat, not the task's amount"
                findings.add(Finding(FindingKind.BAD_SPLIT, entry.location(), detail, (entry.id,)))
            self.paid = {}
        else:
            self.share_paid(entry, findings)

    def share_paid(self, entry: Entry, findings: set[Finding]) -> None:
        share, paid_hash = entry.values.get("share", ""), entry.values.get("share_hash", "")
        preimage = entry.values.get("share_preimage", "")
        if self.paid is None:
            detail = "a share paid on a task that was not split"
        elif share in self.paid:
            detail = f"the {share} share is paid a second time"
        elif not is_hex64(preimage) or hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != (
            paid_hash
        ):
            detail = f"the {share} share's preimage does not hash to its payment hash"
        else:
            self.paid[share] = paid_hash
            return
        findings.add(Finding(FindingKind.BAD_SPLIT, entry.location(), detail, (entry.id,)))

    def completed(self, entry: Entry, findings: set[Finding]) -> None:
        named = {
            "worker": entry.values.get("worker_hash"),
            "employer": entry.values.get("employer_hash"),
        }
        if self.paid != named:
            detail = "the split's settlement names payments other than the shares paid"
            findings.add(Finding(FindingKind.BAD_SPLIT, entry.location(), detail, (entry.id,)))


def _check_preimage(
    entry: Entry,
    funding_hash: str | None,
    findings: set[Finding],
    *,
    what: str = "funding",
) -> None:
    """A settled invoice's preimage hashes to the hash published when it was requested."""
    preimage = entry.values.get("preimage", "")
    if funding_hash is None:
        detail = f"settled without a {what} request entry before it"
    elif not is_hex64(preimage):
        detail = "the preimage tag is not 32 bytes of hex"
    elif hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != funding_hash:
        detail = f"sha256(preimage) is not the {what} payment hash {funding_hash}"
    else:
        return
    findings.add(Finding(FindingKind.PREIMAGE_MISMATCH, entry.location(), detail, (entry.id,)))


def _deletions(
    events: Iterable[object],
    keys: Collection[str],
    entries: list[Entry],
    findings: set[Finding],
) -> None:
    entry_ids: dict[str, Entry] | None = None  # made for the first deletion that names one
    for event in _authentic(events, keys, _DELETION_KIND, "deletion request", findings):
        targets = tuple(tag[1] for tag in event["tags"] if tag[0] == "e" and len(tag) >= 2)
        if not targets:
            continue
        if entry_ids is None:
            entry_ids = {entry.id: entry for entry in entries}
        known = [entry_ids[t].gseq for t in targets if t in entry_ids]
        where = Location(gseq=min(known) if known else None, event_id=event["id"])
        detail = f"the operator asked relays to delete {len(targets)} event(s)"
        findings.add(Finding(FindingKind.OPERATOR_DELETION, where, detail, (event["id"], *targets)))


def _order(finding: Finding) -> tuple[int, str, str]:
    gseq = finding.location.gseq
    return (gseq if gseq is not None else -1, finding.kind.value, finding.detail)


def audit_log(
    events: Iterable[object],
    operator: str,
    *,
    kinds: AuditKinds | None = None,
    checkpoints: Iterable[object] = (),
    deletions: Iterable[object] = (),
    jobs: int = 1,
) -> AuditResult:
    """Every finding about the operator's log in ``events`` (any order, duplicates allowed).

    ``operator`` is the key the log starts with; ``KeyRotated`` entries hand it on. Checkpoints
    and deletion requests count when signed by any key the log was handed to. ``jobs``
    processes share the per-event checks (``parallel.py``); the result does not depend on it.

    The cyclic garbage collector is paused meanwhile: what an audit builds (parsed contents,
    entries) lives until it returns, so its passes over the growing heap would free nothing."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _audit_log(events, operator, kinds, checkpoints, deletions, jobs)
    finally:
        if collecting:
            gc.enable()


def _audit_log(
    events: Iterable[object],
    operator: str,
    kinds: AuditKinds | None,
    checkpoints: Iterable[object],
    deletions: Iterable[object],
    jobs: int,
) -> AuditResult:
    kinds = kinds or AuditKinds()
    events = list(events)
    findings: set[Finding] = set()
    entries: list[Entry] = []
    examined = examine_all(events, kinds, jobs)
    readings: dict[str, tuple[Entry | None, list[Finding]]] = {}
    placed: dict[str, Entry | None] = {}
    for event, (_, reading) in zip(events, examined, strict=True):
        if reading is not None:  # only a verified event has one
            event_id = cast("Mapping[str, Any]", event)["id"]
            if event_id not in readings:  # the first of an id, as _authentic keeps it
                readings[event_id] = reading
                placed[event_id] = reading[0]
    verdicts = (verdict for verdict, _ in examined)
    verified = _authentic(events, None, kinds.entry, "log entry", findings, verdicts)
    signed, keys = _by_current_key(verified, operator, findings, placed)
    for event in signed:
        entry, problems = readings[event["id"]]
        findings.update(problems)
        if entry is not None:
            entries.append(entry)

    by_gseq: dict[int, list[Entry]] = defaultdict(list)
    by_task: dict[str, list[Entry]] = defaultdict(list)
    # attrgetter builds each sort key in C, without a Python call an entry.
    for entry in sorted(entries, key=attrgetter("gseq", "id")):
        by_gseq[entry.gseq].append(entry)
        if entry.op != KEY_ROTATED:
            by_task[entry.task].append(entry)

    checkpoint = _checkpoint(checkpoints, keys, kinds, findings)
    head = max(by_gseq, default=-1)
    _global_chain(by_gseq, max(head, checkpoint.gseq if checkpoint else -1), findings)
    required_from = proofs_required_from(entries)
    payouts: list[PayoutCheck] = []
    proven_hashes: dict[str, str] = {}
    for task_entries in by_task.values():
        payouts.append(PayoutCheck(required_from, proven_hashes))
        _task_chain(task_entries, findings, payouts[-1])
        payouts[-1].finish(findings)
    check_series(by_task, findings)
    if checkpoint is not None:
        at_head = {entry.id for entry in by_gseq.get(checkpoint.gseq, [])}
        if at_head and checkpoint.head not in at_head:
            detail = f"checkpoint names {checkpoint.head} as entry {checkpoint.gseq}"
            ids = (checkpoint.id, checkpoint.head, *sorted(at_head))
            where = Location(gseq=checkpoint.gseq)
            findings.add(Finding(FindingKind.CHECKPOINT_MISMATCH, where, detail, ids))
    _deletions(deletions, keys, entries, findings)

    head_group = by_gseq.get(head, [])
    summary = Summary(
        events_received=len(events),
        entries=len(entries),
        tasks=len(by_task),
        tasks_by_final_op=Counter(_final_op(task_entries) for task_entries in by_task.values()),
        head_gseq=head if head >= 0 else None,
        head_id=head_group[0].id if len(head_group) == 1 else None,
        checkpoint_gseq=checkpoint.gseq if checkpoint else None,
        payouts=sum(check.payouts for check in payouts),
        payouts_proven=sum(check.proven for check in payouts),
    )
    return AuditResult(tuple(sorted(findings, key=_order)), summary, keys)
