"""What the auditor reports: a finding is a kind, a place in the log and the ids involved."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Finding", "FindingKind", "Location"]


class FindingKind(StrEnum):
    BAD_ID = "bad_id"
    BAD_SIGNATURE = "bad_signature"
    WRONG_AUTHOR = "wrong_author"
    MALFORMED = "malformed"
    GAP = "gap"
    EQUIVOCATION = "equivocation"
    BROKEN_GPREV = "broken_gprev"
    BROKEN_PREV = "broken_prev"
    SEQ_GAP = "seq_gap"
    TIME_WENT_BACKWARDS = "time_went_backwards"
    BAD_EMBEDDED_REQUEST = "bad_embedded_request"
    PREIMAGE_MISMATCH = "preimage_mismatch"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    OPERATOR_DELETION = "operator_deletion"
    SCORE_MISMATCH = "score_mismatch"
    BAD_RECEIPT = "bad_receipt"
    BAD_SPLIT = "bad_split"
    BAD_SERIES = "bad_series"
    BAD_ROUND = "bad_round"
    UNPROVEN_PAYOUT = "unproven_payout"


@dataclass(frozen=True, slots=True)
class Location:
    """Where in the log: a ``gseq`` (or the range ``gseq``…``gseq_last``), a task's ``seq``,
    or just an event id when the event could not be placed."""

    gseq: int | None = None
    gseq_last: int | None = None
    task: str | None = None
    seq: int | None = None
    event_id: str | None = None

    def describe(self) -> str:
        parts = []
        if self.gseq is not None:
            last = self.gseq_last
            span = "" if last in (None, self.gseq) else f" to {last}"
            parts.append(f"gseq {self.gseq}{span}")
        if self.task is not None:
            parts.append(f"task {self.task[:12]}…" + (f" seq {self.seq}" if self.seq else ""))
        if not parts and self.event_id is not None:
            parts.append(f"event {self.event_id}")
        return ", ".join(parts) or "log"

    def to_json(self) -> dict[str, Any]:
        return {
            name: value
            for name in ("gseq", "gseq_last", "task", "seq", "event_id")
            if (value := getattr(self, name)) is not None
        }


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    location: Location
    detail: str
    event_ids: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "location": self.location.to_json(),
            "where": self.location.describe(),
            "detail": self.detail,
            "event_ids": list(self.event_ids),
        }
