"""Synthetic public logs for the reputation tests: entry dicts shaped as ``docs/public-log.md``
describes them (kind 3910, gseq/task/op/p tags, content {"event", "request", "v"}), unsigned.

The indexer takes signatures as its caller checked them, so unsigned entries are enough to test
what it counts; the API tests use the real, signed log.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

OPERATOR = "0" * 63 + "f"
DAY = 86_400


def pubkey(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass
class LogBuilder:
    """Appends entries in gseq order; ``now`` only moves forward, as the real log's does."""

    now: int = 1_700_000_000
    entries: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    operator: str = OPERATOR
    """The key that signs what is appended from now on (``rotate`` changes it)."""
    _tasks: int = 0
    _last: dict[str, str] = field(default_factory=dict)
    """Task id -> its newest entry's id (the final one once the task closed)."""

    def entry(self, task_id: str, event: dict[str, Any], *, dt: int = 60) -> dict[str, Any]:
        self.now += dt
        gseq = len(self.entries)
        event = {"at": self.now, **event}
        raw = {
            "id": hashlib.sha256(f"{gseq}:{task_id}:{event['type']}".encode()).hexdigest(),
            "pubkey": self.operator,
            "created_at": self.now,
            "kind": 3910,
            "tags": [
                ["task", task_id],
                ["op", event["type"]],
                ["gseq", str(gseq)],
                ["o", str(gseq)],
            ],
            "content": json.dumps({"event": event, "request": None, "v": 1}),
            "sig": "0" * 128,
        }
        self.entries.append(raw)
        self._last[task_id] = raw["id"]
        return raw

    def rotate(self, new_key: str) -> dict[str, Any]:
        """A ``KeyRotated`` entry signed by the current key; ``new_key`` signs from then on."""
        self.now += 60
        gseq = len(self.entries)
        event = {"at": self.now, "new_key": new_key, "old_key": self.operator, "type": "KeyRotated"}
        raw = {
            "id": hashlib.sha256(f"{gseq}:rotation:{new_key}".encode()).hexdigest(),
            "pubkey": self.operator,
            "created_at": self.now,
            "kind": 3910,
            "tags": [
                ["op", "KeyRotated"],
                ["gseq", str(gseq)],
                ["o", str(gseq)],
                ["new_key", new_key],
                ["old_key", self.operator],
            ],
            "content": json.dumps({"event": event, "request": None, "v": 1}),
            "sig": "0" * 128,
        }
        self.entries.append(raw)
        self.operator = new_key
        return raw

    def create(self, employer: str, amount_msat: int = 100_000_000) -> str:
        self._tasks += 1
        task_id = hashlib.sha256(f"task{self._tasks}".encode()).hexdigest()
        self.entry(
            task_id,
            {
                "type": "TaskCreated",
                "actor": employer,
                "task_id": task_id,
                "amount_msat": amount_msat,
            },
        )
        return task_id

    def fund(self, task_id: str, amount_msat: int = 100_000_000, *, dt: int = 60) -> None:
        self.entry(task_id, {"type": "FundingRequested", "actor": "x"}, dt=1)
        self.entry(
            task_id,
            {"type": "FundingAccepted", "actor": "system", "amount_paid_msat": amount_msat},
            dt=dt,
        )

    def claim(self, task_id: str, worker: str, *, dt: int = 60) -> None:
        self.entry(
            task_id, {"type": "TaskClaimed", "actor": worker, "worker_pubkey": worker}, dt=dt
        )

    def proof(self, task_id: str, worker: str, *, dt: int = 60) -> None:
        self.entry(task_id, {"type": "ProofSubmitted", "actor": worker}, dt=dt)

    def approve(self, task_id: str, employer: str, *, dt: int = 60) -> None:
        self.entry(task_id, {"type": "SubmissionApproved", "actor": employer}, dt=dt)

    def dispute(self, task_id: str, actor: str) -> None:
        self.entry(task_id, {"type": "DisputeOpened", "actor": actor, "reason": "r"})

    def resolve(self, task_id: str, winner: str) -> None:
        self.entry(task_id, {"type": "DisputeResolved", "actor": "arb", "winner": winner})

    def release(self, task_id: str, *, dt: int = 60) -> None:
        self.entry(task_id, {"type": "ReleaseCompleted", "actor": "system"}, dt=dt)

    def refund(self, task_id: str, reason: str = "deadline passed without proof") -> None:
        self.entry(task_id, {"type": "RefundOrdered", "actor": "system", "reason": reason})
        self.entry(task_id, {"type": "RefundCompleted", "actor": "system"})

    # the deal's ops (claim discipline, accountable rejection, agreements, splits) --------------

    def reject(self, task_id: str, actor: str) -> None:
        self.entry(task_id, {"type": "SubmissionRejected", "actor": actor, "reason": "no"})

    def rejection_lapsed(self, task_id: str) -> None:
        self.entry(task_id, {"type": "RejectionLapsed", "actor": "system"})

    def revoke(self, task_id: str, actor: str, worker: str) -> None:
        self.entry(task_id, {"type": "ClaimRevoked", "actor": actor, "worker_pubkey": worker})

    def unclaim(self, task_id: str, worker: str, *, actor: str | None = None) -> None:
        event = {"type": "ClaimReleased", "actor": actor or worker, "worker_pubkey": worker}
        self.entry(task_id, event)

    def agree(self, task_id: str, worker_msat: int) -> None:
        self.entry(task_id, {"type": "AgreementAccepted", "actor": "x", "worker_msat": worker_msat})

    def split(self, task_id: str, worker_msat: int, employer_msat: int) -> None:
        event = {"worker_msat": worker_msat, "employer_msat": employer_msat}
        self.entry(task_id, {"type": "SplitDecided", "actor": "arb", **event})

    def submitted_task(self, employer: str, worker: str, amount_msat: int = 100_000_000) -> str:
        """Created, funded, claimed by ``worker`` and a proof submitted."""
        task_id = self.create(employer, amount_msat)
        self.fund(task_id, amount_msat)
        self.claim(task_id, worker)
        self.proof(task_id, worker)
        return task_id

    def paid_task(
        self, employer: str, worker: str, amount_msat: int = 100_000_000, *, gap: int = 60
    ) -> str:
        task_id = self.create(employer, amount_msat)
        self.fund(task_id, amount_msat, dt=gap)
        self.claim(task_id, worker, dt=gap)
        self.proof(task_id, worker, dt=gap)
        self.approve(task_id, employer, dt=gap)
        self.release(task_id, dt=gap)
        return task_id

    def review_record(
        self,
        task_id: str,
        reviewer: str,
        role: str,
        subject: str,
        rating: int,
        *,
        receipt_by: str | None = None,
        record_by: str | None = None,
    ) -> dict[str, Any]:
        """A kind-3914 record as the operator publishes it (unsigned), signed by ``record_by``
        (default: the current key); its receipt is signed by ``receipt_by`` (default: the key
        of the task's final entry, as the operator issues it) and names the task's newest
        entry."""
        final = next(e for e in reversed(self.entries) if e["id"] == self._last[task_id])
        receipt = {
            "id": "r" * 64,
            "pubkey": receipt_by or final["pubkey"],
            "kind": 3913,
            "created_at": self.now,
            "tags": [
                ["task", task_id],
                ["p", reviewer],
                ["role", role],
                ["subject", subject],
                ["e", final["id"]],
            ],
            "content": "",
            "sig": "0" * 128,
        }
        review = {
            "id": hashlib.sha256(f"review:{task_id}:{reviewer}".encode()).hexdigest(),
            "pubkey": reviewer,
            "kind": 3912,
            "created_at": self.now,
            "tags": [["op", "review"], ["task", task_id]],
            "content": json.dumps({"rating": rating, "comment": "", "receipt": receipt}),
            "sig": "0" * 128,
        }
        rseq = len(self.records)
        record = {
            "id": hashlib.sha256(f"record:{rseq}".encode()).hexdigest(),
            "pubkey": record_by or self.operator,
            "kind": 3914,
            "created_at": self.now,
            "tags": [["task", task_id], ["p", subject], ["rseq", str(rseq)]],
            "content": json.dumps(review),
            "sig": "0" * 128,
        }
        self.records.append(record)
        return record
