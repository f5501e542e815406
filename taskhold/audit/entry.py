"""One log entry (kind 3910), read from its tags and content as ``docs/public-log.md`` defines
them, with every per-entry rule checked: tags, content, and the embedded participant request.

An entry whose position cannot be read (``gseq``, ``task``, ``seq`` or ``op`` missing or
ill-formed) is reported and left out of the chain checks; any other fault is reported and the
entry still takes its place in the chains.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard

import bolt11

from .commitments import commitment_problems
from .findings import Finding, FindingKind, Location
from .nip01 import (
    Verdict,
    canonical_json,
    is_hex64,
    parse_json,
    parse_json_noting_floats,
    verify_event,
)

__all__ = [
    "KEY_ROTATED",
    "OPS",
    "REQUEST_OPS",
    "AuditKinds",
    "Entry",
    "PayoutTerms",
    "Series",
    "milestone_task_id",
    "parse_entry",
]

KEY_ROTATED = "KeyRotated"
"""The entry that hands the log from the key signing it to the key in its ``new_key`` tag."""

OPS = frozenset(
    {
        "TaskCreated", "FundingRequested", "FundingAccepted", "FundingExpired", "TaskClaimed",
        "ProofSubmitted", "ProofRefused", "SubmissionApproved", "ReviewWindowElapsed",
        "SubmissionRejected", "DisputeOpened", "DisputeResolved", "DisputeWindowElapsed",
        "RefundOrdered", "TaskCancelled", "PayoutFailed",
        "PayoutRequestUpdated", "ReleaseCompleted", "RefundCompleted", "HoldSettledUnderLivePayout",
        "DepositRequested", "DepositLocked", "DepositReturnOrdered", "DepositForfeited",
        "DepositPayoutRequested", "DepositPayoutFailed", "DepositReturned", "DepositPaidOut",
        "DepositSettledUnderLivePayout",
        "ApplicationFiled", "WorkerAssigned", "ClaimReleased", "ClaimRevoked",
        "SplitDecided", "RefundRequestUpdated", "RefundShareFailed", "SplitSharePaid",
        "SplitCompleted",
        "RejectionLapsed", "AgreementProposed", "AgreementAccepted", "AgreementWithdrawn",
        "RenewalOpened", "Renewed", "RoundCancelled",
        "SwapReported",
    }
)  # fmt: skip

REQUEST_OPS: Mapping[str, frozenset[str]] = {
    "create": frozenset({"TaskCreated"}),
    "fund": frozenset({"FundingRequested"}),
    "claim": frozenset({"TaskClaimed"}),
    "proof": frozenset({"ProofSubmitted", "ProofRefused"}),
    "approve": frozenset({"SubmissionApproved"}),
    "reject": frozenset({"SubmissionRejected"}),
    "dispute": frozenset({"DisputeOpened"}),
    "resolve": frozenset({"DisputeResolved", "SplitDecided"}),
    "cancel": frozenset({"TaskCancelled", "RefundOrdered"}),
    "payout-invoice": frozenset({"PayoutRequestUpdated"}),
    "deposit": frozenset({"DepositRequested"}),
    "deposit-payout": frozenset({"DepositPayoutRequested"}),
    "apply": frozenset({"ApplicationFiled"}),
    "assign": frozenset({"WorkerAssigned"}),
    "unclaim": frozenset({"ClaimReleased"}),
    "revoke": frozenset({"ClaimRevoked"}),
    "refund-invoice": frozenset({"RefundRequestUpdated"}),
    "propose-agreement": frozenset({"AgreementProposed"}),
    "accept-agreement": frozenset({"AgreementAccepted"}),
    "withdraw-agreement": frozenset({"AgreementWithdrawn"}),
    "swap": frozenset({"SwapReported"}),
}
"""Which entry a participant's request (its ``op`` tag) may cause."""

_SIGNED_BY_EMPLOYER = frozenset({"WorkerAssigned", "ClaimRevoked"})
"""Entries whose request only the employer (the first ``p`` tag) may sign."""
_SIGNED_BY_WORKER = frozenset({"ApplicationFiled", "ClaimReleased"})
"""Entries whose request only the key in the event's ``worker_pubkey`` may sign."""
_SWAP_REPORTERS: Mapping[str, int] = {"funding": 0, "payout": 1}
"""A ``SwapReported`` entry's ``swap_role`` -> the ``p`` tag of the only key that may sign its
request: the employer (first) reports the funding swap, the worker (second) the payout swap."""


def _uint(value: str) -> bool:
    """ASCII digits without a leading zero (``0|[1-9][0-9]*``), read without a regex."""
    return value.isascii() and value.isdigit() and (value[0] != "0" or len(value) == 1)


def _bolt11(value: str) -> bool:
    return value.lower().startswith("ln") and len(value) > 10


_PAYMENT_TAGS: Mapping[str, Mapping[str, Callable[[str], bool]]] = {
    "FundingRequested": {"payment_hash": is_hex64, "bolt11": _bolt11, "cltv_expiry": _uint},
    "FundingAccepted": {"expiry_height": _uint, "amount_msat": _uint},
    "ReleaseCompleted": {"preimage": is_hex64, "payout_hash": is_hex64, "payout_fee_msat": _uint},
    "HoldSettledUnderLivePayout": {"preimage": is_hex64, "payout_hash": is_hex64},
    "RefundCompleted": {
        "invoice_state": lambda value: value in ("CANCELED", "NONE", "NOT_FOUND"),
    },
    "SplitDecided": {
        "worker_msat": _uint, "employer_msat": _uint, "fee_msat": _uint,
        "basis": lambda value: value in ("ruling", "agreement"),
    },
    "SplitSharePaid": {
        "share": lambda value: value in ("worker", "employer"), "share_hash": is_hex64,
        "share_preimage": is_hex64, "share_fee_msat": _uint,
    },
    "SplitCompleted": {"preimage": is_hex64, "worker_hash": is_hex64, "employer_hash": is_hex64},
    "RenewalOpened": {
        "round": _uint, "renewal_hash": is_hex64, "bolt11": _bolt11, "cltv_expiry": _uint,
    },
    "Renewed": {
        "round": _uint, "payment_hash": is_hex64, "expiry_height": _uint, "amount_msat": _uint,
        "previous_hash": is_hex64,
    },
    "RoundCancelled": {"round": _uint, "cancelled_hash": is_hex64},
    "DepositRequested": {
        "depositor": is_hex64, "deposit_hash": is_hex64, "bolt11": _bolt11,
        "amount_msat": _uint, "cltv_expiry": _uint,
    },
    "DepositLocked": {"depositor": is_hex64, "expiry_height": _uint, "amount_msat": _uint},
    "DepositReturnOrdered": {"depositor": is_hex64},
    "DepositForfeited": {"depositor": is_hex64, "beneficiary": is_hex64},
    "DepositPayoutRequested": {"depositor": is_hex64},
    "DepositPayoutFailed": {"depositor": is_hex64},
    "DepositReturned": {
        "depositor": is_hex64,
        "invoice_state": lambda value: value in ("CANCELED", "NOT_FOUND"),
    },
    "DepositSettledUnderLivePayout": {
        "depositor": is_hex64, "preimage": is_hex64, "payout_hash": is_hex64,
    },
    "DepositPaidOut": {
        "depositor": is_hex64, "preimage": is_hex64, "payout_hash": is_hex64,
        "payout_fee_msat": _uint,
    },
    "SwapReported": {
        "swap_role": lambda value: value in _SWAP_REPORTERS,
        "swap_id": lambda value: re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value) is not None,
    },
}  # fmt: skip
_SWAP_TXIDS = frozenset({"lockup_txid", "claim_txid", "refund_txid"})
_OPTIONAL_PAYMENT_TAGS: Mapping[str, frozenset[str]] = {
    "ReleaseCompleted": frozenset({"payout_preimage"}),
    "DepositPaidOut": frozenset({"payout_preimage"}),
    "SwapReported": _SWAP_TXIDS,
}
"""Tags an entry may lack: entries from before them (the payout check reads them), or a swap
report's txids, each given once known (64 hex when present)."""
_ALL_PAYMENT_TAGS = (
    frozenset(name for tags in _PAYMENT_TAGS.values() for name in tags)
    | {"payout_preimage"}
    | _SWAP_TXIDS
)
_ALLOWED_PAYMENT_TAGS: Mapping[str, frozenset[str]] = {
    op: frozenset(_PAYMENT_TAGS.get(op, ())) | _OPTIONAL_PAYMENT_TAGS.get(op, frozenset())
    for op in _PAYMENT_TAGS.keys() | _OPTIONAL_PAYMENT_TAGS.keys()
}
"""The payment tags each entry may carry, required or optional."""
_NONE: Mapping[str, Callable[[str], bool]] = {}
_TASK_TAGS = frozenset({"a", "task", "seq", "state", "prev", "e"})
_SINGLE_TAGS = frozenset(
    {"op", "gseq", "o", "gprev", "new_key", "old_key"} | _TASK_TAGS | _ALL_PAYMENT_TAGS
)
_SINGLE_TAG_NAMES = {name: name for name in _SINGLE_TAGS}
"""Each single-valued tag's name, as this module's own string: the entries' ``values`` then
share their keys, which ``--jobs`` sends back pickled once a message instead of once a key."""


@dataclass(frozen=True, slots=True)
class AuditKinds:
    """The event kinds of the log being audited (taskhold's defaults; they are settings)."""

    entry: int = 3910
    proof: int = 3911
    request: int = 3912
    listing: int = 30402
    checkpoint: int = 30078


class Entry(NamedTuple):
    """A verified, operator-signed log entry placed by its tags.

    A named tuple rather than a frozen dataclass: one is made for every entry of the log, and
    a frozen dataclass sets each of its fields through ``object.__setattr__``, which cost a
    few percent of the audit."""

    id: str
    created_at: int
    gseq: int
    task: str
    seq: int
    op: str
    prev: str | None
    gprev: str | None
    values: Mapping[str, str]
    """The value of each single-valued tag (``payment_hash``, ``preimage``, …)."""
    amount_msat: int | None = None
    """The amount a ``TaskCreated`` entry's content declares (a split's shares and fee must
    make it)."""
    series: Series | None = None
    """What a ``TaskCreated`` entry of a milestone declares about its series."""
    fee_msat: int | None = None
    """The operator fee a ``TaskCreated`` entry's content declares (the payout is the amount
    minus it)."""
    participants: tuple[str, ...] = ()
    """The ``p`` tags' keys: the employer, then the worker."""
    terms: PayoutTerms | None = None
    """The payout terms the embedded request signed, if it gives a payout invoice."""
    signer: str | None = None
    """The key that signed the embedded request, when one is embedded and verifies."""
    worker: str | None = None
    """The worker a ``TaskClaimed`` or ``WorkerAssigned`` entry makes: the claim request's
    signer, the key the assign request names (the content event's ``worker_pubkey`` only when
    no request verifies)."""

    def location(self) -> Location:
        """Where a finding about this entry is: made only for a finding (a ``Location`` for
        every entry of the log cost 2 µs each in the checks over the whole log)."""
        return Location(gseq=self.gseq, task=self.task, seq=self.seq, event_id=self.id)


@dataclass(frozen=True, slots=True)
class PayoutTerms:
    """What a request giving a payout invoice commits its signer to: the payment hash and
    amount of the invoice. ``signed`` when the request carries them in clear (``payout_hash``,
    ``payout_msat``); otherwise they are read from the invoice it carries (requests from before
    the terms), which the payee's node signed."""

    signer: str
    op: str
    """The request's ``op``: ``proof``, ``payout-invoice``, ``refund-invoice`` or
    ``deposit-payout``."""
    payout_hash: str
    payout_msat: int | None
    signed: bool
    depositor: str | None = None
    """The deposit a ``deposit-payout`` request claims."""


@dataclass(frozen=True, slots=True)
class Series:
    """A milestone's place in its series, as its ``TaskCreated`` content declares it."""

    series_id: str
    index: int
    count: int
    funding_mode: str
    employer: str


def milestone_task_id(series_id: str, index: int) -> str:
    """The task id of milestone ``index``: the series id (the create request's id) for the
    first, ``sha256("taskhold/milestone/v1|<series id>|<index>")`` for the others."""
    if index == 0:
        return series_id
    return hashlib.sha256(f"taskhold/milestone/v1|{series_id}|{index}".encode()).hexdigest()


def _milestone_of(request_id: str, event: Mapping[str, Any]) -> str | None:
    """The task id a create request may make as a milestone of its own series, if the entry
    declares one (the first milestone's id is the request's own)."""
    index = event.get("milestone_index")
    if event.get("series_id") != request_id or not _is_int(index) or index < 0:
        return None
    return milestone_task_id(request_id, index)


def _name_keys(participants: list[list[str]]) -> bool:
    """At least one ``p`` tag, and each names a key (64 hex)."""
    for tag in participants:
        if len(tag) < 2 or not is_hex64(tag[1]):
            return False
    return bool(participants)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


_CONTENT_KEYS = frozenset({"event", "request", "v"})
_UNREAD = object()
_NOT_JSON = object()


class _Reader:
    def __init__(self, event: Mapping[str, Any], operator: str, kinds: AuditKinds) -> None:
        self.event = event
        self.operator = operator
        self.kinds = kinds
        self.findings: list[Finding] = []
        self.values: dict[str, str] = {}
        self.place: dict[str, Any] = {}
        """Where the entry is, once read (``Location``'s fields), for the findings about it."""
        self._parsed: Any = _UNREAD
        self._floatless = False
        """Whether the content, once parsed, is known to hold no float (see canonical_json)."""
        self._event_of_content: dict[str, Any] | None = None
        self.e_tag: list[str] | None = None
        """The first ``e`` tag: the one that names the embedded request."""
        self.request_verb = "None"
        """The embedded request's ``op`` (``"None"`` without one), once ``check_request`` has
        read it."""
        self.prev: str | None = None
        self.gprev: str | None = None
        """``prev`` and ``gprev`` when present and 64 hex, once ``check_tags`` read them."""

    def parsed_content(self) -> Any:
        """The content read as JSON once for every check that needs it (ValueError when it is
        not JSON); nothing here changes what was read."""
        if self._parsed is _UNREAD:
            try:
                self._parsed, self._floatless = parse_json_noting_floats(self.event["content"])
            except ValueError:
                self._parsed = _NOT_JSON
        if self._parsed is _NOT_JSON:
            raise ValueError("content is not JSON")
        return self._parsed

    def fault(self, kind: FindingKind, detail: str, *ids: str) -> None:
        where = Location(**self.place, event_id=self.event["id"])
        self.findings.append(Finding(kind, where, detail, (self.event["id"], *ids)))

    def read_tags(self) -> list[list[str]]:
        participants = []
        values = self.values
        single_name = _SINGLE_TAG_NAMES.get  # bound once: about a dozen tags an entry
        for tag in self.event["tags"]:
            name = tag[0]
            if name == "p":
                participants.append(tag)
                continue
            name = single_name(name)
            if name is None:
                continue
            if name == "e" and self.e_tag is None:
                self.e_tag = tag
            if name in values:
                self.fault(FindingKind.MALFORMED, f"tag {name!r} appears more than once")
            elif len(tag) < 2:
                self.fault(FindingKind.MALFORMED, f"tag {name!r} has no value")
            else:
                values[name] = tag[1]
        return participants

    def position(self) -> tuple[int, str, int, str] | None:
        values = self.values
        gseq_text, task, seq_text = values.get("gseq"), values.get("task"), values.get("seq")
        op = values.get("op")
        if (
            gseq_text is not None
            and _uint(gseq_text)
            and is_hex64(task)
            and seq_text is not None
            and _uint(seq_text)
            and seq_text != "0"
            and op in OPS
        ):  # the usual case, read once; otherwise every problem is named below
            gseq, seq = int(gseq_text), int(seq_text)
            self.place = {"gseq": gseq, "task": task, "seq": seq}
            return gseq, str(task), seq, str(op)
        problems = []
        if not _uint(values.get("gseq", "")):
            problems.append("gseq")
        if not is_hex64(values.get("task")):
            problems.append("task")
        if not _uint(values.get("seq", "")) or values.get("seq") == "0":
            problems.append("seq")
        if values.get("op") not in OPS:
            problems.append("op")
        if problems:
            self.fault(FindingKind.MALFORMED, "missing or ill-formed: " + ", ".join(problems))
            return None
        gseq, task, seq, op = int(values["gseq"]), values["task"], int(values["seq"]), values["op"]
        self.place = {"gseq": gseq, "task": task, "seq": seq}
        return gseq, task, seq, op

    def gprev_ok(self, gseq: int) -> bool:
        gprev = self.values.get("gprev")
        if gprev is not None and is_hex64(gprev):
            self.gprev = gprev
            return gseq != 0
        return gseq == 0 and gprev is None

    def rotation(self, participants: list[list[str]]) -> int | None:
        """Check a ``KeyRotated`` entry; its ``gseq``, or None when it cannot be placed."""
        values, signer = self.values, self.event["pubkey"]
        if not _uint(values.get("gseq", "")):
            self.fault(FindingKind.MALFORMED, "missing or ill-formed: gseq")
            return None
        gseq = int(values["gseq"])
        self.place = {"gseq": gseq}
        bad = []
        if values.get("o") != str(gseq):
            bad.append("o (must equal gseq)")
        if not self.gprev_ok(gseq):
            bad.append("gprev (required exactly when gseq > 0)")
        new_key = values.get("new_key")
        if not is_hex64(new_key) or new_key == signer:
            bad.append("new_key (another key, 64 hex)")
        if values.get("old_key") != signer:
            bad.append("old_key (must be the key that signed the rotation)")
        stray = sorted((_TASK_TAGS | _ALL_PAYMENT_TAGS) & values.keys())
        bad.extend(f"{name} (not allowed on {KEY_ROTATED})" for name in stray)
        if participants:
            bad.append(f"p (not allowed on {KEY_ROTATED})")
        if bad:
            self.fault(FindingKind.MALFORMED, "ill-formed tags: " + "; ".join(bad))
        if self.check_content(KEY_ROTATED) is not None:
            self.fault(FindingKind.MALFORMED, "a rotation embeds no request")
        try:
            event = self.parsed_content()["event"]
        except (ValueError, KeyError, TypeError):
            return gseq  # reported by check_content
        if (
            not isinstance(event, dict)
            or event.get("new_key") != new_key
            or event.get("old_key") != signer
            or not isinstance(event.get("at"), int)
        ):
            self.fault(FindingKind.MALFORMED, "content event must repeat new_key, old_key, at")
        return gseq

    def check_tags(
        self, gseq: int, task: str, seq: int, op: str, participants: list[list[str]]
    ) -> None:
        values, bad = self.values, []
        if values.get("o") != str(gseq):
            bad.append("o (must equal gseq)")
        if values.get("a") != f"{self.kinds.listing}:{self.operator}:{task}":
            bad.append("a (must be the task's listing coordinate)")
        if not is_hex64(values.get("state")):
            bad.append("state")
        prev = values.get("prev")
        if prev is not None and is_hex64(prev):
            self.prev = prev
        if (seq == 1) != (prev is None) or (prev is not None and self.prev is None):
            bad.append("prev (required exactly when seq > 1)")
        if not self.gprev_ok(gseq):
            bad.append("gprev (required exactly when gseq > 0)")
        if (op == "TaskCreated") != (seq == 1):
            bad.append("seq (1 exactly for TaskCreated)")
        if not _name_keys(participants):
            bad.append("p (employer first, then the keys the transition concerns)")
        for name, valid in _PAYMENT_TAGS.get(op, _NONE).items():
            if name not in values or not valid(values[name]):
                bad.append(name)
        stray = _ALL_PAYMENT_TAGS.intersection(values)
        if stray:
            stray -= _ALLOWED_PAYMENT_TAGS.get(op, frozenset())
            if stray:
                bad.extend(f"{name} (not allowed on {op})" for name in sorted(stray))
        if not _SWAP_TXIDS.isdisjoint(values):
            txids = sorted(_SWAP_TXIDS.intersection(values))
            bad.extend(name for name in txids if not is_hex64(values[name]))
        if op == "SwapReported" and "claim_txid" in values and "refund_txid" in values:
            bad.append("claim_txid and refund_txid (a swap is claimed or refunded)")
        if bad:
            self.fault(FindingKind.MALFORMED, "ill-formed tags: " + "; ".join(bad))

    def check_content(self, op: str) -> dict[str, Any] | None:
        """The embedded request (or None), after checking the content's shape."""
        try:
            content = self.parsed_content()
        except ValueError:
            self.fault(FindingKind.MALFORMED, "content is not JSON")
            return None
        if not isinstance(content, dict) or content.keys() != _CONTENT_KEYS:
            self.fault(FindingKind.MALFORMED, "content must be {event, request, v}")
            return None
        problems = []
        if canonical_json(content, floatless=self._floatless) != self.event["content"]:
            problems.append("content is not canonical JSON")
        if content["v"] != 1:
            problems.append(f"unknown content version {content['v']!r}")
        event = content["event"]
        if not isinstance(event, dict) or event.get("type") != op:
            problems.append("content event.type differs from the op tag")
        request: dict[str, Any] | None = None
        if isinstance(content["request"], dict):
            request = content["request"]
        elif content["request"] is not None:
            problems.append("content request is neither an event nor null")
        if problems:
            self.fault(FindingKind.MALFORMED, "; ".join(problems))
        return request

    def _content_event(self) -> dict[str, Any]:
        """The content's event, or {} (a malformed content is reported by check_content)."""
        if self._event_of_content is None:
            try:
                event = self.parsed_content()["event"]
            except (ValueError, KeyError, TypeError):
                event = {}
            self._event_of_content = event if isinstance(event, dict) else {}
        return self._event_of_content

    def check_request(self, request: dict[str, Any] | None, task: str, op: str) -> bool:
        """Check the embedded request against the entry; whether nothing was wrong with it."""
        reference = self.values.get("e")
        e_tag = self.e_tag
        if request is None:
            if reference is not None:
                self.fault(FindingKind.BAD_EMBEDDED_REQUEST, "e tag names a request, none embedded")
                return False
            return True
        request_id = str(request.get("id"))
        if e_tag is None or len(e_tag) < 2:  # an e tag without a value names nothing
            self.fault(FindingKind.BAD_EMBEDDED_REQUEST, "request embedded without an e tag")
            return False
        verdict = verify_event(request)
        if verdict is not Verdict.OK:
            self.fault(FindingKind.BAD_EMBEDDED_REQUEST, f"embedded request: {verdict}", request_id)
            return False
        problems = []
        if e_tag[1] != request["id"]:
            problems.append("its id is not the e tag's")
        if len(e_tag) < 4 or e_tag[3] != request["pubkey"]:
            problems.append("its author is not the one the e tag names")
        request_tags = {tag[0]: tag[1] for tag in reversed(request["tags"]) if len(tag) >= 2}
        verb = self.request_verb = str(request_tags.get("op"))
        if verb not in REQUEST_OPS or op not in REQUEST_OPS[verb]:
            problems.append(f"its op {verb!r} cannot cause {op}")
        proposer = self._content_event().get("proposed_by")
        if op == "AgreementAccepted" and proposer == request["pubkey"]:
            problems.append("it accepts its own author's proposal")
        expected_kind = self.kinds.proof if verb == "proof" else self.kinds.request
        if request["kind"] != expected_kind:
            problems.append(f"kind {request['kind']} (expected {expected_kind})")
        if verb == "create":
            if task not in (request["id"], _milestone_of(request["id"], self._content_event())):
                problems.append("the task id is not the create request's id")
        elif request_tags.get("task") != task:
            problems.append("its task tag names another task")
        problems.extend(self._signer_problems(op, str(request["pubkey"])))
        if problems:
            self.fault(
                FindingKind.BAD_EMBEDDED_REQUEST, "embedded request: " + "; ".join(problems),
                request_id,
            )  # fmt: skip
            return False
        return True

    def _signer_problems(self, op: str, signer: str) -> list[str]:
        """Who may sign the request behind a claim-mode entry: the employer assigns and
        revokes, a worker applies and unclaims only for themselves."""
        if op in _SIGNED_BY_EMPLOYER:
            employer = next((t[1] for t in self.event["tags"] if t[0] == "p" and len(t) > 1), None)
            if signer != employer:
                return [f"{op} must be signed by the employer (the first p tag)"]
        if op in _SIGNED_BY_WORKER:
            try:
                worker = self.parsed_content()["event"]["worker_pubkey"]
            except (ValueError, KeyError, TypeError):
                return [f"{op} names no worker_pubkey"]
            if signer != worker:
                return [f"{op} must be signed by its worker_pubkey"]
        if op == "SwapReported":
            return self._swap_signer_problems(signer)
        return []

    def _swap_signer_problems(self, signer: str) -> list[str]:
        """A funding swap is reported by the employer, a payout swap by the worker."""
        role = self.values.get("swap_role", "")
        place = _SWAP_REPORTERS.get(role)
        keys = [t[1] for t in self.event["tags"] if t[0] == "p" and len(t) > 1]
        if place is None or len(keys) <= place or keys[place] != signer:
            who = "the employer (first p tag)" if place == 0 else "the worker (second p tag)"
            return [f"a {role} swap must be reported by {who}"]
        if self._content_event().get("role") != role:
            return ["the content event's role is not the swap_role tag's"]
        return []


def parse_entry(
    event: Mapping[str, Any], operator: str, kinds: AuditKinds
) -> tuple[Entry | None, list[Finding]]:
    """Read a verified kind-3910 event signed by ``operator``, the operator key current at its
    place; the entry is None when it cannot be placed in the log."""
    reader = _Reader(event, operator, kinds)
    participants = reader.read_tags()
    if reader.values.get("op") == KEY_ROTATED:
        gseq = reader.rotation(participants)
        if gseq is None:
            return None, reader.findings
        rotation = Entry(
            event["id"], event["created_at"], gseq, "", 0, KEY_ROTATED, None, reader.gprev,
            reader.values,
        )  # fmt: skip
        return rotation, reader.findings
    place = reader.position()
    if place is None:
        return None, reader.findings
    gseq, task, seq, op = place
    reader.check_tags(gseq, task, seq, op, participants)
    request = reader.check_content(op)
    embedded_ok = reader.check_request(request, task, op)
    terms = None
    if request is not None and embedded_ok:
        terms = _payout_terms(request, reader.request_verb)
    content_event = reader._content_event()
    sealing = commitment_problems(op, content_event, request, operator)
    if sealing:
        reader.fault(FindingKind.MALFORMED, "private content: " + "; ".join(sealing))
    created = op == "TaskCreated"
    # Positional, in Entry's field order: keywords cost 1.6 µs an entry in the named
    # tuple's generated __new__.
    entry = Entry(
        event["id"],
        event["created_at"],
        gseq,
        task,
        seq,
        op,
        reader.prev,
        reader.gprev,
        reader.values,
        _declared_amount(content_event) if created else None,  # amount_msat
        _declared_series(content_event, participants) if created else None,  # series
        _declared_amount(content_event, "fee_msat") if created else None,  # fee_msat
        tuple([tag[1] for tag in participants if len(tag) >= 2]),  # participants
        terms,
        str(request["pubkey"]) if request is not None and embedded_ok else None,  # signer
        _new_worker(op, content_event, request if embedded_ok else None),  # worker
    )
    return entry, reader.findings


def _new_worker(op: str, event: Mapping[str, Any], request: Mapping[str, Any] | None) -> str | None:
    """The worker a claim or an assignment makes, read from what its signer signed."""
    if op not in ("TaskClaimed", "WorkerAssigned"):
        return None
    named: object = event.get("worker_pubkey")
    if request is not None and op == "TaskClaimed":
        named = request["pubkey"]
    elif request is not None:
        try:
            named = parse_json(request["content"]).get("worker_pubkey")
        except (ValueError, AttributeError):
            named = None
    return str(named) if is_hex64(named) else None


_INVOICE_FIELDS: Mapping[str, str] = {
    "proof": "payout_invoice",
    "payout-invoice": "payout_invoice",
    "refund-invoice": "refund_invoice",
    "deposit-payout": "payout_invoice",
}
"""The requests that give a payout invoice, and the content field that holds it."""


def _payout_terms(request: Mapping[str, Any], verb: str) -> PayoutTerms | None:
    """The terms a verified embedded request signed (None if it gives no payout invoice or
    its terms cannot be read). ``verb``: the value of its first ``op`` tag with one."""
    field = _INVOICE_FIELDS.get(verb)
    if field is None:
        return None
    try:
        content = parse_json(request["content"])
    except ValueError:
        return None
    if not isinstance(content, dict):
        return None
    depositor = content.get("depositor") if verb == "deposit-payout" else None
    base = {"signer": request["pubkey"], "op": verb, "depositor": depositor}
    payout_hash, payout_msat = content.get("payout_hash"), content.get("payout_msat")
    if is_hex64(payout_hash) and _is_int(payout_msat):
        return PayoutTerms(
            payout_hash=str(payout_hash), payout_msat=payout_msat, signed=True, **base
        )
    invoice = content.get(field)
    if not isinstance(invoice, str):
        return None
    try:
        decoded = bolt11.decode(invoice.strip().removeprefix("lightning:"))
    except Exception:  # the library raises many kinds for malformed input
        return None
    amount = decoded.amount_msat
    return PayoutTerms(
        payout_hash=str(decoded.payment_hash),
        payout_msat=int(amount) if amount is not None else None,
        signed=False,
        **base,
    )


def _declared_series(created: Mapping[str, Any], participants: list[list[str]]) -> Series | None:
    """The series a milestone's ``TaskCreated`` declares (``created``: its content event, {}
    when unreadable); None for a task on its own (and for entries from before milestones).
    Ill-typed series fields read as an impossible index, so the series check reports them."""
    if created.get("series_id") is None:
        return None
    index, count = created.get("milestone_index"), created.get("milestone_count")
    return Series(
        series_id=str(created["series_id"]),
        index=index if _is_int(index) else -1,
        count=count if _is_int(count) else -1,
        funding_mode=str(created.get("funding_mode")),
        employer=participants[0][1] if participants and len(participants[0]) > 1 else "",
    )


def _declared_amount(created: Mapping[str, Any], name: str = "amount_msat") -> int | None:
    amount = created.get(name)  # an unreadable content is reported by check_content
    return amount if isinstance(amount, int) and not isinstance(amount, bool) else None
