// The explorer's audit of an operator's log: pure functions over a list of events, no DOM and no
// network, so Node runs them in the tests as the browser runs them on the page. The checks are
// taskhold/audit/checks.py's: each event on its own (shape, id, signature, kind, author), then
// the log as a whole (gap-free gseq with one entry per number, the gprev chain, created_at never
// backwards, each task's seq/prev chain, each settlement's preimage against its funding hash,
// payout proofs, split and renewal rounds, the checkpoint's head, deletions asked of relays).
import { KEY_ROTATED, DEFAULT_KINDS, parseEntry, tagValue } from "./entry.js";
import { Findings, Kind, entryLocation, finding } from "./findings.js";
import { sha256Hex } from "./hashes.js";
import { Verdict, isHex64, verifyVerdict } from "./nip01.js";
import { PayoutCheck, proofsRequiredFrom } from "./payouts.js";
import { checkSeries } from "./series.js";

export const CHECKPOINT_D = "taskhold-log-head";
const DELETION_KIND = 5;

function claimedGseq(event) {
  const tags = event !== null && typeof event === "object" ? event.tags : undefined;
  for (const tag of Array.isArray(tags) ? tags : []) {
    if (Array.isArray(tag) && tag.length >= 2 && tag[0] === "gseq") {
      return typeof tag[1] === "string" && /^[0-9]+$/.test(tag[1]) ? Number(tag[1]) : null;
    }
  }
  return null;
}

function rawId(event) {
  return event !== null && typeof event === "object" && typeof event.id === "string"
    ? event.id
    : null;
}

function refusal(event, verdict, authors, kind, what) {
  const eventId = rawId(event);
  const where = { gseq: claimedGseq(event), event_id: eventId };
  const ids = eventId ? [eventId] : [];
  if (verdict !== Verdict.OK) {
    return finding(verdict, where, `${what} does not verify: ${verdict}`, ids);
  }
  if (authors !== null && !authors.includes(event.pubkey)) {
    return finding(Kind.WRONG_AUTHOR, where, `${what} signed by ${event.pubkey}, not the operator`, ids);
  }
  return finding(Kind.MALFORMED, where, `kind ${event.kind} where a ${what} (kind ${kind}) was expected`, ids);
}

/** The events that verify, are of ``kind`` and by one of ``authors`` (any when null), once
 * per id; a finding for each other one. */
function authentic(events, authors, kind, what, findings, verdicts) {
  const kept = new Map();
  events.forEach((event, i) => {
    const verdict = verdicts ? verdicts[i] : verifyVerdict(event);
    if (verdict === Verdict.OK && (authors === null || authors.includes(event.pubkey)) && event.kind === kind) {
      if (!kept.has(event.id)) kept.set(event.id, event);
      return;
    }
    findings.add(refusal(event, verdict, authors, kind, what));
  });
  return [...kept.values()];
}

function handedTo(event) {
  if (tagValue(event, "op") !== KEY_ROTATED) return null;
  const newKey = tagValue(event, "new_key");
  return isHex64(newKey) ? newKey : null;
}

/** The entries signed by the operator key current at their gseq, and every key the log was
 * handed to (a KeyRotated entry by the current key hands it on from the next gseq). */
function byCurrentKey(events, operator, findings, placed) {
  const byGseq = new Map();
  const unplaced = [];
  for (const event of events) {
    const entry = placed.get(event.id);
    const gseq = entry ? entry.gseq : claimedGseq(event);
    if (gseq === null) unplaced.push(event);
    else byGseq.set(gseq, [...(byGseq.get(gseq) ?? []), event]);
  }
  let current = new Set([operator]);
  const chain = [operator];
  const kept = [];
  const refuse = (event, gseq, keys) => {
    const named = [...keys].sort().join(", ");
    const detail = `log entry signed by ${event.pubkey}, not the operator key (${named})`;
    findings.add(finding(Kind.WRONG_AUTHOR, { gseq, event_id: event.id }, detail, [event.id]));
  };
  for (const gseq of [...byGseq.keys()].sort((a, b) => a - b)) {
    const handed = new Set();
    for (const event of byGseq.get(gseq)) {
      if (!current.has(event.pubkey)) {
        refuse(event, gseq, current);
        continue;
      }
      kept.push(event);
      handed.add(handedTo(event) ?? event.pubkey);
    }
    if (handed.size) {
      current = handed;
      for (const key of [...handed].sort()) if (!chain.includes(key)) chain.push(key);
    }
  }
  for (const event of unplaced) {
    if (chain.includes(event.pubkey)) kept.push(event);
    else refuse(event, null, chain);
  }
  return { kept, keys: chain };
}

function latestCheckpoint(events, keys, kinds, findings) {
  let best = null;
  for (const event of authentic(events, keys, kinds.checkpoint, "checkpoint", findings)) {
    const values = {};
    for (const tag of [...event.tags].reverse()) if (tag.length >= 2) values[tag[0]] = tag[1];
    if (values.d !== CHECKPOINT_D) continue;
    const gseq = values.gseq ?? "";
    const head = values.head;
    if (!/^[0-9]+$/.test(gseq) || !isHex64(head) || values.count !== String(Number(gseq) + 1)) {
      const detail = "checkpoint needs d, gseq, head and count = gseq + 1";
      findings.add(finding(Kind.MALFORMED, { event_id: event.id }, detail, [event.id]));
      continue;
    }
    if (best === null || Number(gseq) > best.gseq) best = { id: event.id, gseq: Number(gseq), head };
  }
  return best;
}

/** Runs of consecutive numbers: [[first, last], …]. */
export function ranges(numbers) {
  const runs = [];
  for (const n of numbers) {
    if (runs.length && runs[runs.length - 1][1] === n - 1) runs[runs.length - 1][1] = n;
    else runs.push([n, n]);
  }
  return runs;
}

function globalChain(byGseq, last, findings) {
  const missing = [];
  for (let g = 0; g <= last; g += 1) if (!byGseq.has(g)) missing.push(g);
  for (const [first, final] of ranges(missing)) {
    const count = final - first + 1;
    const detail = `${count} entr${count === 1 ? "y" : "ies"} missing from the operator-wide log`;
    findings.add(finding(Kind.GAP, { gseq: first, gseq_last: final }, detail));
  }
  let previous = [];
  for (const gseq of [...byGseq.keys()].sort((a, b) => a - b)) {
    const group = byGseq.get(gseq);
    if (group.length > 1) {
      const ids = group.map((entry) => entry.id).sort();
      const detail = `${group.length} different operator-signed entries for one gseq`;
      findings.add(finding(Kind.EQUIVOCATION, { gseq }, detail, ids));
    }
    const before = previous.length && previous[0].gseq === gseq - 1 ? previous : [];
    const beforeIds = new Set(before.map((other) => other.id));
    const earliest = previous.length ? previous.reduce((m, o) => Math.min(m, o.created_at), Infinity) : null;
    for (const entry of group) {
      const broken = before.length > 0 && !beforeIds.has(entry.gprev);
      const backwards = earliest !== null && entry.created_at < earliest;
      const where = entryLocation(entry);
      if (broken) {
        const detail = `gprev ${entry.gprev ?? "None"} is not the id of entry ${gseq - 1}`;
        findings.add(finding(Kind.BROKEN_GPREV, where, detail, [entry.id]));
      }
      if (backwards) {
        const detail =
          `created_at ${entry.created_at} is before ${previous[0].created_at} ` +
          `of entry ${previous[0].gseq}`;
        findings.add(finding(Kind.TIME_WENT_BACKWARDS, where, detail, [entry.id]));
      }
    }
    previous = group;
  }
}

function checkPreimage(entry, fundingHash, findings, what = "funding") {
  const preimage = entry.values.preimage ?? "";
  let detail;
  if (fundingHash === null || fundingHash === undefined) {
    detail = `settled without a ${what} request entry before it`;
  } else if (!isHex64(preimage)) {
    detail = "the preimage tag is not 32 bytes of hex";
  } else if (sha256Hex(preimage) !== fundingHash) {
    detail = `sha256(preimage) is not the ${what} payment hash ${fundingHash}`;
  } else {
    return true;
  }
  findings.add(finding(Kind.PREIMAGE_MISMATCH, entryLocation(entry), detail, [entry.id]));
  return false;
}

const SETTLES = new Set(["ReleaseCompleted", "HoldSettledUnderLivePayout", "SplitCompleted"]);
const ENDS_FUNDING = new Set([...SETTLES, "RefundCompleted", "RefundOrdered"]);

/** A task's funding rounds: renewals only while held and not ended, one round settled. */
class RoundCheck {
  constructor() {
    this.held = false;
    this.ended = false;
    this.renewalHash = null;
    this.settled = new Set();
  }

  see(entry, findings) {
    const values = entry.values;
    let detail = null;
    if (entry.op === "FundingAccepted") {
      this.held = true;
    } else if (ENDS_FUNDING.has(entry.op)) {
      this.ended = true;
      if (SETTLES.has(entry.op)) {
        this.settled.add(values.preimage ?? "");
        if (this.settled.size > 1) detail = "a second round settled: only one funding round may be";
      }
    } else if (entry.op === "RenewalOpened") {
      if (!this.held || this.ended) {
        detail = "a renewal opened while the task was not held, or after it ended";
      } else if (this.renewalHash !== null) {
        detail = "a renewal opened while another was still open";
      }
      this.renewalHash = values.renewal_hash ?? null;
    } else if (entry.op === "Renewed") {
      if (!this.held || this.ended) {
        detail = "a renewal taken while the task was not held, or after it ended";
      } else if (this.renewalHash === null || values.payment_hash !== this.renewalHash) {
        detail = "the renewed round's hash is not the one the renewal opened";
      }
      this.renewalHash = null;
    } else if (entry.op === "RoundCancelled" && values.cancelled_hash === this.renewalHash) {
      this.renewalHash = null;
    }
    if (detail !== null) findings.add(finding(Kind.BAD_ROUND, entryLocation(entry), detail, [entry.id]));
  }
}

/** A split's money: shares plus fee make the amount, each share paid once with a preimage of
 * its hash, the settlement names the shares paid. */
class SplitCheck {
  constructor() {
    this.amountMsat = null;
    this.paid = null;
  }

  see(entry, findings) {
    const values = entry.values;
    if (entry.op === "TaskCreated") {
      this.amountMsat = entry.amount_msat;
    } else if (entry.op === "SplitDecided") {
      const parts = ["worker_msat", "employer_msat", "fee_msat"].map((n) => values[n] ?? "");
      const total = parts.filter((p) => /^[0-9]+$/.test(p)).reduce((a, p) => a + Number(p), 0);
      if (this.amountMsat === null || total !== this.amountMsat) {
        const detail = `the shares plus the fee make ${total} msat, not the task's amount`;
        findings.add(finding(Kind.BAD_SPLIT, entryLocation(entry), detail, [entry.id]));
      }
      this.paid = {};
    } else {
      this.sharePaid(entry, findings);
    }
  }

  sharePaid(entry, findings) {
    const share = entry.values.share ?? "";
    const paidHash = entry.values.share_hash ?? "";
    const preimage = entry.values.share_preimage ?? "";
    let detail;
    if (this.paid === null) detail = "a share paid on a task that was not split";
    else if (Object.hasOwn(this.paid, share)) detail = `the ${share} share is paid a second time`;
    else if (!isHex64(preimage) || sha256Hex(preimage) !== paidHash) {
      detail = `the ${share} share's preimage does not hash to its payment hash`;
    } else {
      this.paid[share] = paidHash;
      return;
    }
    findings.add(finding(Kind.BAD_SPLIT, entryLocation(entry), detail, [entry.id]));
  }

  completed(entry, findings) {
    const named = { worker: entry.values.worker_hash, employer: entry.values.employer_hash };
    const paid = this.paid ?? {};
    const same =
      this.paid !== null &&
      Object.keys(paid).length === 2 &&
      paid.worker === named.worker &&
      paid.employer === named.employer;
    if (!same) {
      const detail = "the split's settlement names payments other than the shares paid";
      findings.add(finding(Kind.BAD_SPLIT, entryLocation(entry), detail, [entry.id]));
    }
  }
}

/** seq runs 1, 2, … in gseq order and each prev names the entry before; preimages, rounds,
 * splits and payouts are checked on the way. ``preimagesOk``: ids whose preimage hashed right. */
function taskChain(entries, findings, payouts, preimagesOk) {
  let expected = 1;
  let lastIds = new Set();
  const bySeq = new Map();
  let fundingHash = null;
  const depositHashes = {};
  const split = new SplitCheck();
  const rounds = new RoundCheck();
  for (const entry of entries) {
    const where = entryLocation(entry);
    const twin = bySeq.get(entry.seq);
    if (twin !== undefined) {
      if (twin.gseq !== entry.gseq) {
        const detail = `seq ${entry.seq} signed twice, at gseq ${twin.gseq} and ${entry.gseq}`;
        findings.add(finding(Kind.EQUIVOCATION, where, detail, [twin.id, entry.id]));
      }
      if (twin.seq === expected - 1) lastIds.add(entry.id);
      payouts.signed(entry);
      continue;
    }
    bySeq.set(entry.seq, entry);
    if (entry.seq !== expected) {
      findings.add(finding(Kind.SEQ_GAP, where, `expected seq ${expected}, found ${entry.seq}`, [entry.id]));
    } else if (lastIds.size && !lastIds.has(entry.prev)) {
      const detail = `prev ${entry.prev ?? "None"} is not the id of seq ${expected - 1}`;
      findings.add(finding(Kind.BROKEN_PREV, where, detail, [entry.id, ...[...lastIds].sort()]));
    }
    expected = entry.seq + 1;
    lastIds = new Set([entry.id]);
    rounds.see(entry, findings);
    payouts.see(entry, where, findings);
    const values = entry.values;
    if (entry.op === "FundingRequested" || entry.op === "Renewed") {
      fundingHash = values.payment_hash ?? null;
    } else if (SETTLES.has(entry.op)) {
      if (checkPreimage(entry, fundingHash, findings)) preimagesOk.add(entry.id);
      if (entry.op === "SplitCompleted") split.completed(entry, findings);
    } else if (["TaskCreated", "SplitDecided", "SplitSharePaid"].includes(entry.op)) {
      split.see(entry, findings);
    } else if (entry.op === "DepositRequested") {
      depositHashes[values.depositor ?? ""] = values.deposit_hash ?? "";
    } else if (entry.op === "DepositPaidOut" || entry.op === "DepositSettledUnderLivePayout") {
      const paid = depositHashes[values.depositor ?? ""];
      if (checkPreimage(entry, paid, findings, "deposit")) preimagesOk.add(entry.id);
    }
  }
}

function deletionRequests(events, keys, entryIds, findings) {
  for (const event of authentic(events, keys, DELETION_KIND, "deletion request", findings)) {
    const targets = event.tags.filter((t) => t[0] === "e" && t.length >= 2).map((t) => t[1]);
    if (!targets.length) continue;
    const known = targets.filter((t) => entryIds.has(t)).map((t) => entryIds.get(t).gseq);
    const where = { gseq: known.length ? known.reduce((a, b) => Math.min(a, b)) : null, event_id: event.id };
    const detail = `the operator asked relays to delete ${targets.length} event(s)`;
    findings.add(finding(Kind.OPERATOR_DELETION, where, detail, [event.id, ...targets]));
  }
}

/**
 * Every finding about the operator's log in ``events`` (any order, duplicates allowed), with
 * what the page shows: the entries placed in the log, the preimage and payout proofs that held.
 * ``operator``: the key the log starts with (hex); KeyRotated entries hand it on.
 */
export function auditLog(events, operator, { kinds = DEFAULT_KINDS, checkpoints = [], deletions = [] } = {}) {
  const findings = new Findings();
  const verdicts = events.map(verifyVerdict);
  const readings = new Map();
  events.forEach((event, i) => {
    if (verdicts[i] === Verdict.OK && event.kind === kinds.entry && !readings.has(event.id)) {
      readings.set(event.id, parseEntry(event, kinds));
    }
  });
  const verified = authentic(events, null, kinds.entry, "log entry", findings, verdicts);
  const placed = new Map([...readings].map(([id, reading]) => [id, reading.entry]));
  const { kept, keys } = byCurrentKey(verified, operator, findings, placed);
  const entries = [];
  for (const event of kept) {
    const { entry, findings: problems } = readings.get(event.id);
    findings.addAll(problems);
    if (entry !== null) entries.push(entry);
  }
  entries.sort((a, b) => a.gseq - b.gseq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const byGseq = new Map();
  const byTask = new Map();
  for (const entry of entries) {
    byGseq.set(entry.gseq, [...(byGseq.get(entry.gseq) ?? []), entry]);
    if (entry.op !== KEY_ROTATED) byTask.set(entry.task, [...(byTask.get(entry.task) ?? []), entry]);
  }

  const checkpoint = latestCheckpoint(checkpoints, keys, kinds, findings);
  let head = -1;
  for (const gseq of byGseq.keys()) head = Math.max(head, gseq);
  globalChain(byGseq, Math.max(head, checkpoint ? checkpoint.gseq : -1), findings);
  const requiredFrom = proofsRequiredFrom(entries);
  const provenHashes = new Map();
  const preimagesOk = new Set();
  const payoutChecks = [];
  for (const taskEntries of byTask.values()) {
    const check = new PayoutCheck(requiredFrom, provenHashes);
    taskChain(taskEntries, findings, check, preimagesOk);
    check.finish(findings);
    payoutChecks.push(check);
  }
  checkSeries(byTask, findings);
  if (checkpoint !== null) {
    const atHead = (byGseq.get(checkpoint.gseq) ?? []).map((entry) => entry.id);
    if (atHead.length && !atHead.includes(checkpoint.head)) {
      const detail = `checkpoint names ${checkpoint.head} as entry ${checkpoint.gseq}`;
      const ids = [checkpoint.id, checkpoint.head, ...atHead.sort()];
      findings.add(finding(Kind.CHECKPOINT_MISMATCH, { gseq: checkpoint.gseq }, detail, ids));
    }
  }
  deletionRequests(deletions, keys, new Map(entries.map((e) => [e.id, e])), findings);

  const payoutsProven = new Set(payoutChecks.flatMap((check) => [...check.provenIds]));
  return {
    findings: findings.sorted(),
    entries,
    keys,
    preimagesOk,
    payoutsProven,
    summary: {
      events_received: events.length,
      entries: entries.length,
      tasks: byTask.size,
      head_gseq: head >= 0 ? head : null,
      checkpoint_gseq: checkpoint ? checkpoint.gseq : null,
      payouts: payoutChecks.reduce((n, check) => n + check.payouts, 0),
      payouts_proven: payoutChecks.reduce((n, check) => n + check.proven, 0),
    },
  };
}
