"""Proof that the payee was paid: each payout the log records paid is tied, by its preimage,
to an invoice hash and amount the payee signed.

A request that gives a payout invoice signs ``payout_hash`` and ``payout_msat`` in clear (from
before that, the invoice it carries tells them). The entry that records the payout paid
reveals the payout's preimage: ``payout_preimage`` on ``ReleaseCompleted`` and
``DepositPaidOut``, ``share_preimage`` on each ``SplitSharePaid``. A payout is proven when

- ``sha256(preimage)`` is the entry's payout hash (``payout_hash`` or ``share_hash``);
- the payee signed that hash on this task: the worker (the entry's second ``p``) in a
  ``proof`` or ``payout-invoice`` request for the reward or a split's worker share, the
  employer (first ``p``) in a ``refund-invoice`` request for a split's employer share, the
  beneficiary ``DepositForfeited`` named in a ``deposit-payout`` request for that deposit;
- the amount signed for it is what the payee is owed: the task's amount minus its fee
  (``TaskCreated``), the share ``SplitDecided`` gave, the deposit's amount (``DepositRequested``).

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
from .findings import Finding, FindingKind, Location
from .nip01 import is_hex64

__all__ = ["PAYOUT_OPS", "PayoutCheck", "proofs_required_from"]

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
    payouts: int = 0
    proven: int = 0
    owed_msat: int | None = None
    shares_msat: dict[str, int] = field(default_factory=dict)
    deposits_msat: dict[str, int] = field(default_factory=dict)
    beneficiaries: dict[str, str] = field(default_factory=dict)
    terms: list[PayoutTerms] = field(default_factory=list)

    def signed(self, entry: Entry) -> None:
        """Keep the terms the entry's request signed: a payee signed them whatever the entry's
        place (a twin of an equivocated ``seq``, reported as such, still embeds them)."""
        if entry.terms is not None:
            self.terms.append(entry.terms)

    def see(self, entry: Entry, where: Location, findings: set[Finding]) -> None:
        values = entry.values
        self.signed(entry)
        if entry.op == "TaskCreated" and entry.amount_msat is not None:
            self.owed_msat = entry.amount_msat - (entry.fee_msat or 0)
        elif entry.op == "SplitDecided":
            self.shares_msat = {
                share: int(values[name])
                for share, name in (("worker", "worker_msat"), ("employer", "employer_msat"))
                if values.get(name, "").isdigit()
            }
        elif entry.op == "DepositRequested" and values.get("amount_msat", "").isdigit():
            self.deposits_msat[values.get("depositor", "")] = int(values["amount_msat"])
        elif entry.op == "DepositForfeited":
            self.beneficiaries[values.get("depositor", "")] = values.get("beneficiary", "")
        elif entry.op in PAYOUT_OPS:
            self._paid(entry, where, findings)

    def _paid(self, entry: Entry, where: Location, findings: set[Finding]) -> None:
        self.payouts += 1
        detail = self._unproven(entry)
        if detail is None:
            self.proven += 1
        elif self.required_from is not None and entry.gseq >= self.required_from:
            findings.add(Finding(FindingKind.UNPROVEN_PAYOUT, where, detail, (entry.id,)))

    def _unproven(self, entry: Entry) -> str | None:
        """Why the payout this entry records is not proven; None when it is."""
        values = entry.values
        employer = entry.participants[0] if entry.participants else None
        worker = entry.participants[1] if len(entry.participants) > 1 else None
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
        signed = [
            terms
            for terms in self.terms
            if terms.payout_hash == paid_hash
            and terms.signer == payee
            and terms.op in ops
            and terms.depositor == depositor
        ]
        if not signed:
            return f"{what}'s payment hash {paid_hash} is not one its payee signed on this task"
        amounts = {terms.payout_msat for terms in signed}
        if owed is None or amounts != {owed}:
            shown = ", ".join(str(amount) for amount in sorted(amounts, key=str))
            return f"{what}'s payee signed {shown} msat for it; {owed} msat were owed"
        return None
