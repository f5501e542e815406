// Proof that each payee was paid (taskhold/audit/payouts.py): the entry recording a payout
// reveals a preimage whose sha256 is the payout hash, that hash is the one the payee (named by
// the log's own chain, not the payout entry's p tags) signed last on the task, for the amount
// owed, and no other payout entry proved the same hash. A settlement that makes a payout owed
// with no entry recording it paid counts it unproven. Logs from before the proofs are exempt
// until their first entry that carries one.
import { Kind, finding } from "./findings.js";
import { isHex64 } from "./nip01.js";
import { sha256Hex } from "./hashes.js";

export const PAYOUT_OPS = new Set(["ReleaseCompleted", "DepositPaidOut", "SplitSharePaid"]);
const WORKER_OPS = new Set(["proof", "payout-invoice"]);

/** The gseq from which the log proves its payouts; null for a log from before. */
export function proofsRequiredFrom(entries) {
  let first = null;
  for (const entry of entries) {
    const switched =
      Object.hasOwn(entry.values, "payout_preimage") || (entry.terms !== null && entry.terms.signed);
    if (switched && (first === null || entry.gseq < first)) first = entry.gseq;
  }
  return first;
}

/** One task's payouts, entry by entry in seq order. */
export class PayoutCheck {
  constructor(requiredFrom, provenHashes) {
    this.requiredFrom = requiredFrom;
    this.provenHashes = provenHashes;
    this.payouts = 0;
    this.proven = 0;
    this.provenIds = new Set();
    this.owedMsat = null;
    this.split = false;
    this.sharesMsat = {};
    this.depositsMsat = {};
    this.beneficiaries = {};
    this.terms = [];
    this.employer = null;
    this.worker = null;
    this.owed = new Map();
    this.paid = new Set();
  }

  signed(entry) {
    if (entry.terms !== null) this.terms.push(entry.terms);
  }

  see(entry, where, findings) {
    const values = entry.values;
    const digits = (name) => /^[0-9]+$/.test(values[name] ?? "");
    this.signed(entry);
    if (entry.op === "TaskCreated") {
      this.employer = entry.signer ?? entry.participants[0] ?? null;
      if (entry.amount_msat !== null) this.owedMsat = entry.amount_msat - (entry.fee_msat ?? 0);
    } else if (entry.op === "TaskClaimed" || entry.op === "WorkerAssigned") {
      this.worker = entry.worker;
    } else if (entry.op === "ClaimReleased" || entry.op === "ClaimRevoked") {
      this.worker = null;
    } else if (entry.op === "SplitDecided") {
      this.split = true;
      this.sharesMsat = {};
      if (digits("worker_msat")) this.sharesMsat.worker = Number(values.worker_msat);
      if (digits("employer_msat")) this.sharesMsat.employer = Number(values.employer_msat);
    } else if (entry.op === "DepositRequested" && digits("amount_msat")) {
      this.depositsMsat[values.depositor ?? ""] = Number(values.amount_msat);
    } else if (entry.op === "DepositForfeited") {
      const depositor = values.depositor ?? "";
      const counterparty = depositor === this.employer ? this.worker : this.employer;
      this.beneficiaries[depositor] = counterparty ?? "";
    } else if (PAYOUT_OPS.has(entry.op)) {
      this.recordPaid(entry, where, findings);
    } else if (entry.op === "DepositSettledUnderLivePayout") {
      this.owe(`deposit|${values.depositor ?? ""}`, entry, where);
    } else if (entry.op === "HoldSettledUnderLivePayout" && !this.split) {
      this.owe("reward|", entry, where);
    } else if (entry.op === "HoldSettledUnderLivePayout" || entry.op === "SplitCompleted") {
      for (const share of ["worker", "employer"]) {
        if (this.sharesMsat[share] !== 0) this.owe(`share|${share}`, entry, where);
      }
    }
  }

  owe(key, entry, where) {
    if (!this.owed.has(key)) this.owed.set(key, { entry, where });
  }

  finish(findings) {
    for (const [key, { entry, where }] of this.owed) {
      if (this.paid.has(key)) continue;
      this.payouts += 1;
      const [what, share] = key.split("|");
      const named =
        { reward: "the payout", share: `the ${share} share` }[what] ?? "the deposit's payout";
      const detail = `the escrow was settled (${entry.op}) but no entry records ${named} paid`;
      this.fault(entry, where, detail, findings);
    }
  }

  fault(entry, where, detail, findings) {
    if (this.requiredFrom !== null && entry.gseq >= this.requiredFrom) {
      findings.add(finding(Kind.UNPROVEN_PAYOUT, where, detail, [entry.id]));
    }
  }

  recordPaid(entry, where, findings) {
    this.payouts += 1;
    const values = entry.values;
    if (entry.op === "SplitSharePaid") this.paid.add(`share|${values.share ?? ""}`);
    else if (entry.op === "DepositPaidOut") this.paid.add(`deposit|${values.depositor ?? ""}`);
    else this.paid.add("reward|");
    let detail = this.unproven(entry);
    const paidHash = values.share_hash || values.payout_hash || "";
    const first = this.provenHashes.get(paidHash);
    if (detail === null && first !== undefined) {
      detail = `payment hash ${paidHash} was already proven as the payout of entry ${first}`;
    }
    if (detail === null) {
      this.proven += 1;
      this.provenIds.add(entry.id);
      this.provenHashes.set(paidHash, entry.id);
    } else {
      this.fault(entry, where, detail, findings);
    }
  }

  unproven(entry) {
    const values = entry.values;
    let preimage, paidHash, payee, owed, ops, what;
    let depositor = null;
    if (entry.op === "SplitSharePaid") {
      const share = values.share ?? "";
      [preimage, paidHash] = [values.share_preimage, values.share_hash ?? ""];
      [payee, owed, ops] = [this.worker, this.sharesMsat[share], WORKER_OPS];
      if (share === "employer") [payee, ops] = [this.employer, new Set(["refund-invoice"])];
      what = `the ${share} share`;
    } else if (entry.op === "DepositPaidOut") {
      depositor = values.depositor ?? "";
      [preimage, paidHash] = [values.payout_preimage, values.payout_hash ?? ""];
      [payee, owed] = [this.beneficiaries[depositor], this.depositsMsat[depositor]];
      [ops, what] = [new Set(["deposit-payout"]), "the deposit's payout"];
    } else {
      [preimage, paidHash] = [values.payout_preimage, values.payout_hash ?? ""];
      [payee, owed, ops, what] = [this.worker, this.owedMsat, WORKER_OPS, "the payout"];
    }
    if (!isHex64(preimage)) return `${what} reveals no payout preimage (32 bytes of hex)`;
    if (sha256Hex(preimage) !== paidHash) {
      return `sha256 of ${what}'s preimage is not its payment hash ${paidHash}`;
    }
    const latest = [...this.terms]
      .reverse()
      .find(
        (terms) =>
          payee !== null &&
          payee !== undefined &&
          terms.signer === payee &&
          ops.has(terms.op) &&
          terms.depositor === depositor,
      );
    if (latest === undefined || latest.payout_hash !== paidHash) {
      return (
        `${what}'s payment hash ${paidHash} is not the latest invoice its payee ` +
        `(${payee || "nobody the log names"}) signed on this task`
      );
    }
    if (owed === null || owed === undefined || latest.payout_msat !== owed) {
      return `${what}'s payee signed ${latest.payout_msat} msat for it; ${owed ?? "None"} msat were owed`;
    }
    return null;
  }
}
