"""Proof that the payee was paid: each payout the log records paid is tied, by its preimage,
to an invoice hash and amount the payee signed.

A request that gives a payout invoice signs ``payout_hash`` and ``payout_msat`` in clear (from
before that, the invoice it carries tells them). The entry that records the payout paid
reveals the payout's preimage: ``payout_preimage`` on ``ReleaseCompleted`` and
``DepositPaidOut``, ``share_preimage`` on each ``SplitSharePaid``. A payout is proven when

- ``sha256(preimage)`` is the entry's payout hash (``payout_hash`` or ``share_hash``);
- the payee is the one the log's own chain names, never the payout entry's ``p`` tags (the
  operator writes those): the employer is the create request's signer; the worker is the
  ``claim`` request's signer (``TaskClaimed``) or the key the employer's ``assign`` request
  named (``WorkerAssigned``), until a ``ClaimReleased`` or ``ClaimRevoked``; a forfeited
  deposit goes to the counterparty of its depositor (the worker current at the forfeit for the
  employer's deposit, the employer for a worker's), as ``taskhold/tasks/deposits.py`` decides;
- the payee's LATEST terms on this task before the payout sign that hash: the worker's
  ``proof`` or ``payout-invoice`` request for the reward or a split's worker share, the
  employer's ``refund-invoice`` request for a split's employer share, the beneficiary's
  ``deposit-payout`` request for that deposit (an invoice the payee replaced proves nothing);
- the amount signed for it is what the payee is owed: the task's amount minus its fee
  (``TaskCreated``), the share ``SplitDecided`` gave, the deposit's amount (``DepositRequested``);
- no other payout entry in the log proved the same payment hash.

A settlement that reveals the escrow's preimage before or without the payee being paid
(``HoldSettledUnderLivePayout``, ``DepositSettledUnderLivePayout``) or after the shares
(``SplitCompleted``) makes the payout owed (on a split task, each share): a log with no
payout entry for it counts it unproven.

The deposit rule mirrors only who a forfeit goes to, not whether the forfeit was due: that
needs the task state ``deposits.py`` decides on (claim timeouts, refused proofs, who opened a
dispute), which the auditor does not rebuild; an unjust forfeit is not reported here.

The rule for logs from before the proof existed: a log switches to proven payouts at its
first entry (by ``gseq``) that reveals a ``payout_preimage`` or embeds a request that signs
``payout_hash``. From that entry on, an unproven payout is the fault ``unproven_payout``,
whatever form the entry takes, so an operator that writes the new form once cannot go back
to the old one to hide a payout. Payouts before it are not faults, but they are not proven:
the summary's ``payout_proven`` is true only when every payout in the log is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from .entry import Entry, PayoutTerms
from .findings import Finding, FindingKind
from .nip01 import is_hex64

__all__ = ["PAYOUT_OPS", "PayoutCheck", "proofs_required_from"]

_Owed = tuple[str, str]
"""What a payout pays: ``("reward", "")``, ``("share", <share>)``, ``("deposit", <depositor>)``."""

PAYOUT_OPS = frozenset({"ReleaseCompleted", "DepositPaidOut", "SplitSharePaid"})
"""The entries that record a payout paid."""

_WORKER_OPS = frozenset({"proof", "payout-invoice"})


def proofs_required_from(entries: Iterable[Entry]) -> int | None:
    """The ``gseq`` from which the log proves its payouts; None for a log from before."""
    switched = [
        entry.gseq
        for entry in entries
        if "payout_preimage" in entry.values or (entry.terms is not None and entry.terms.signed)
    ]
    return min(switched, default=None)


@dataclass
class PayoutCheck:
    """One task's payouts, entry by entry (in ``seq`` order)."""

    required_from: int | None
    proven_hashes: dict[str, str] = field(default_factory=dict)
    """Payment hash -> the payout entry that proved it, shared by every task of the log."""
    payouts: int = 0
    proven: int = 0
    owed_msat: int | None = None
    split: bool = False
    shares_msat: dict[str, int] = field(default_factory=dict)
    deposits_msat: dict[str, int] = field(default_factory=dict)
    beneficiaries: dict[str, str] = field(default_factory=dict)
    terms: list[PayoutTerms] = field(default_factory=list)
    employer: str | None = None
    worker: str | None = None
    owed: dict[_Owed, Entry] = field(default_factory=dict)
    """Payouts a settlement made owed, and the settlement."""
    paid: set[_Owed] = field(default_factory=set)

    def signed(self, entry: Entry) -> None:
        """Keep the terms the entry's request signed: a payee signed them whatever the entry's
        place (a twin of an equivocated ``seq``, reported as such, still embeds them)."""
        if entry.terms is not None:
            self.terms.append(entry.terms)

    def see(self, entry: Entry, findings: set[Finding]) -> None:
        values = entry.values
        self.signed(entry)
        if entry.op == "TaskCreated":
            self.employer = entry.signer or next(iter(entry.participants), None)
            if entry.amount_msat is not None:
                self.owed_msat = entry.amount_msat - (entry.fee_msat or 0)
        elif entry.op in ("TaskClaimed", "WorkerAssigned"):
            self.worker = entry.worker
        elif entry.op in ("ClaimReleased", "ClaimRevoked"):
            self.worker = None
        elif entry.op == "SplitDecided":
            self.split = True
            self.shares_msat = {
                share: int(values[name])
                for share, name in (("worker", "worker_msat"), ("employer", "employer_msat"))
                if values.get(name, "").isdigit()
            }
        elif entry.op == "DepositRequested" and values.get("amount_msat", "").isdigit():
            self.deposits_msat[values.get("depositor", "")] = int(values["amount_msat"])
        elif entry.op == "DepositForfeited":
            depositor = values.get("depositor", "")
            counterparty = self.worker if depositor == self.employer else self.employer
            self.beneficiaries[depositor] = counterparty or ""
        elif entry.op in PAYOUT_OPS:
            self._paid(entry, findings)
        elif entry.op == "DepositSettledUnderLivePayout":
            self.owed.setdefault(("deposit", values.get("depositor", "")), entry)
        elif entry.op == "HoldSettledUnderLivePayout" and not self.split:
            self.owed.setdefault(("reward", ""), entry)
        elif entry.op in ("HoldSettledUnderLivePayout", "SplitCompleted"):
            for share in ("worker", "employer"):
                if self.shares_msat.get(share) != 0:
                    self.owed.setdefault(("share", share), entry)

    def finish(self, findings: set[Finding]) -> None:
        """Count each payout a settlement made owed that no payout entry records."""
        for key, entry in self.owed.items():
            if key in self.paid:
                continue
            self.payouts += 1
            what = {"reward": "the payout", "share": f"the {key[1]} share"}.get(
                key[0], "the deposit's payout"
            )
            detail = f"the escrow was settled ({entry.op}) but no entry records {what} paid"
            self._fault(entry, detail, findings)

    def _fault(self, entry: Entry, detail: str, findings: set[Finding]) -> None:
        if self.required_from is not None and entry.gseq >= self.required_from:
            where = entry.location()
            findings.add(Finding(FindingKind.UNPROVEN_PAYOUT, where, detail, (entry.id,)))

    def _paid(self, entry: Entry, findings: set[Finding]) -> None:
        self.payouts += 1
        values = entry.values
        if entry.op == "SplitSharePaid":
            self.paid.add(("share", values.get("share", "")))
        elif entry.op == "DepositPaidOut":
            self.paid.add(("deposit", values.get("depositor", "")))
        else:
            self.paid.add(("reward", ""))
        detail = self._unproven(entry)
        paid_hash = values.get("share_hash") or values.get("payout_hash", "")
        first = self.proven_hashes.get(paid_hash)
        if detail is None and first is not None:
            detail = f"payment hash {paid_hash} was already proven as the payout of entry {first}"
        if detail is None:
            self.proven += 1
            self.proven_hashes[paid_hash] = entry.id
        else:
            self._fault(entry, detail, findings)

    def _unproven(self, entry: Entry) -> str | None:
        """Why the payout this entry records is not proven; None when it is."""
        values = entry.values
        employer, worker = self.employer, self.worker
        depositor: str | None = None
        if entry.op == "SplitSharePaid":
            share = values.get("share", "")
            preimage, paid_hash = values.get("share_preimage"), values.get("share_hash", "")
            payee, owed = (worker, self.shares_msat.get(share))
            ops = _WORKER_OPS
            if share == "employer":
                payee, ops = employer, frozenset({"refund-invoice"})
            what = f"the {share} share"
        elif entry.op == "DepositPaidOut":
            depositor = values.get("depositor", "")
            preimage, paid_hash = values.get("payout_preimage"), values.get("payout_hash", "")
            payee, owed = self.beneficiaries.get(depositor), self.deposits_msat.get(depositor)
            ops, what = frozenset({"deposit-payout"}), "the deposit's payout"
        else:
            preimage, paid_hash = values.get("payout_preimage"), values.get("payout_hash", "")
            payee, owed, ops, what = worker, self.owed_msat, _WORKER_OPS, "the payout"
        if not is_hex64(preimage):
            return f"{what} reveals no payout preimage (32 bytes of hex)"
        assert preimage is not None
        if hashlib.sha256(bytes.fromhex(preimage)).hexdigest() != paid_hash:
            return f"sha256 of {what}'s preimage is not its payment hash {paid_hash}"
        latest = next(
            (
                terms
                for terms in reversed(self.terms)
                if payee is not None
                and terms.signer == payee
                and terms.op in ops
                and terms.depositor == depositor
            ),
            None,
        )
        if latest is None or latest.payout_hash != paid_hash:
            return (
                f"{what}'s payment hash {paid_hash} is not the latest invoice its payee "
                f"({payee or 'nobody the log names'}) signed on this task"
            )
        if owed is None or latest.payout_msat != owed:
            return f"{what}'s payee signed {latest.payout_msat} msat for it; {owed} msat were owed"
        return None
