// One log entry (kind 3910) read from its tags and content, with the per-entry rules of
// taskhold/audit/entry.py: the tags, the content's shape and the embedded participant request
// (its own id and signature, the e tag naming it, which request may cause which entry, who may
// sign it). An entry whose place cannot be read (gseq, task, seq or op) is reported and left
// out of the chains; any other fault is reported and the entry keeps its place.
import { Kind, finding } from "./findings.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import { commitmentProblems, pyRepr } from "./commitments.js";
import { Verdict, canonicalJson, isHex64, isObject, verifyVerdict } from "./nip01.js";

export const KEY_ROTATED = "KeyRotated";

export const DEFAULT_KINDS = Object.freeze({
  entry: 3910,
  proof: 3911,
  request: 3912,
  listing: 30402,
  checkpoint: 30078,
});

export const OPS = new Set([
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
]);

/** Which entry a participant's request (its op tag) may cause. */
const REQUEST_OPS = {
  create: ["TaskCreated"],
  fund: ["FundingRequested"],
  claim: ["TaskClaimed"],
  proof: ["ProofSubmitted", "ProofRefused"],
  approve: ["SubmissionApproved"],
  reject: ["SubmissionRejected"],
  dispute: ["DisputeOpened"],
  resolve: ["DisputeResolved", "SplitDecided"],
  cancel: ["TaskCancelled", "RefundOrdered"],
  "payout-invoice": ["PayoutRequestUpdated"],
  deposit: ["DepositRequested"],
  "deposit-payout": ["DepositPayoutRequested"],
  apply: ["ApplicationFiled"],
  assign: ["WorkerAssigned"],
  unclaim: ["ClaimReleased"],
  revoke: ["ClaimRevoked"],
  "refund-invoice": ["RefundRequestUpdated"],
  "propose-agreement": ["AgreementProposed"],
  "accept-agreement": ["AgreementAccepted"],
  "withdraw-agreement": ["AgreementWithdrawn"],
  swap: ["SwapReported"],
};

const SIGNED_BY_EMPLOYER = new Set(["WorkerAssigned", "ClaimRevoked"]);
const SIGNED_BY_WORKER = new Set(["ApplicationFiled", "ClaimReleased"]);
const SWAP_REPORTERS = { funding: 0, payout: 1 };

const UINT = /^(0|[1-9][0-9]*)$/;
const uint = (value) => typeof value === "string" && UINT.test(value);
const bolt11 = (value) => value.toLowerCase().startsWith("ln") && value.length > 10;
const oneOf = (...allowed) => (value) => allowed.includes(value);

const PAYMENT_TAGS = {
  FundingRequested: { payment_hash: isHex64, bolt11, cltv_expiry: uint },
  FundingAccepted: { expiry_height: uint, amount_msat: uint },
  ReleaseCompleted: { preimage: isHex64, payout_hash: isHex64, payout_fee_msat: uint },
  HoldSettledUnderLivePayout: { preimage: isHex64, payout_hash: isHex64 },
  RefundCompleted: { invoice_state: oneOf("CANCELED", "NONE", "NOT_FOUND") },
  SplitDecided: {
    worker_msat: uint, employer_msat: uint, fee_msat: uint, basis: oneOf("ruling", "agreement"),
  },
  SplitSharePaid: {
    share: oneOf("worker", "employer"), share_hash: isHex64, share_preimage: isHex64,
    share_fee_msat: uint,
  },
  SplitCompleted: { preimage: isHex64, worker_hash: isHex64, employer_hash: isHex64 },
  RenewalOpened: { round: uint, renewal_hash: isHex64, bolt11, cltv_expiry: uint },
  Renewed: {
    round: uint, payment_hash: isHex64, expiry_height: uint, amount_msat: uint,
    previous_hash: isHex64,
  },
  RoundCancelled: { round: uint, cancelled_hash: isHex64 },
  DepositRequested: {
    depositor: isHex64, deposit_hash: isHex64, bolt11, amount_msat: uint, cltv_expiry: uint,
  },
  DepositLocked: { depositor: isHex64, expiry_height: uint, amount_msat: uint },
  DepositReturnOrdered: { depositor: isHex64 },
  DepositForfeited: { depositor: isHex64, beneficiary: isHex64 },
  DepositPayoutRequested: { depositor: isHex64 },
  DepositPayoutFailed: { depositor: isHex64 },
  DepositReturned: { depositor: isHex64, invoice_state: oneOf("CANCELED", "NOT_FOUND") },
  DepositSettledUnderLivePayout: { depositor: isHex64, preimage: isHex64, payout_hash: isHex64 },
  DepositPaidOut: {
    depositor: isHex64, preimage: isHex64, payout_hash: isHex64, payout_fee_msat: uint,
  },
  SwapReported: {
    swap_role: (value) => Object.hasOwn(SWAP_REPORTERS, value),
    swap_id: (value) => /^[A-Za-z0-9_-]{1,64}$/.test(value),
  },
};
const SWAP_TXIDS = ["lockup_txid", "claim_txid", "refund_txid"];
const OPTIONAL_PAYMENT_TAGS = {
  ReleaseCompleted: ["payout_preimage"],
  DepositPaidOut: ["payout_preimage"],
  SwapReported: SWAP_TXIDS,
};
const ALL_PAYMENT_TAGS = new Set([
  ...Object.values(PAYMENT_TAGS).flatMap((tags) => Object.keys(tags)),
  "payout_preimage",
  ...SWAP_TXIDS,
]);
const TASK_TAGS = new Set(["a", "task", "seq", "state", "prev", "e"]);
const SINGLE_TAGS = new Set([
  "op", "gseq", "o", "gprev", "new_key", "old_key", ...TASK_TAGS, ...ALL_PAYMENT_TAGS,
]);
const CONTENT_KEYS = ["event", "request", "v"];

/** The value of the first ``name`` tag with one. */
export function tagValue(event, name) {
  for (const tag of event.tags) {
    if (tag.length >= 2 && tag[0] === name) return tag[1];
  }
  return undefined;
}

function isInt(value) {
  return Number.isSafeInteger(value);
}

/** The task id of milestone ``index`` of a series (the first's is the series id itself). */
export function milestoneTaskId(seriesId, index) {
  if (index === 0) return seriesId;
  return bytesToHex(sha256(utf8ToBytes(`taskhold/milestone/v1|${seriesId}|${index}`)));
}

function milestoneOf(requestId, contentEvent) {
  const index = contentEvent.milestone_index;
  if (contentEvent.series_id !== requestId || !isInt(index) || index < 0) return null;
  return milestoneTaskId(requestId, index);
}

class Reader {
  constructor(event, kinds) {
    this.event = event;
    this.kinds = kinds;
    this.findings = [];
    this.values = {};
    this.place = {};
    this.parsed = undefined;
  }

  parsedContent() {
    if (this.parsed === undefined) {
      try {
        this.parsed = { value: JSON.parse(this.event.content) };
      } catch {
        this.parsed = null;
      }
    }
    if (this.parsed === null) throw new Error("content is not JSON");
    return this.parsed.value;
  }

  contentEvent() {
    try {
      const event = this.parsedContent().event;
      return isObject(event) ? event : {};
    } catch {
      return {};
    }
  }

  fault(kind, detail, ...ids) {
    const where = { ...this.place, event_id: this.event.id };
    this.findings.push(finding(kind, where, detail, [this.event.id, ...ids]));
  }

  readTags() {
    const participants = [];
    for (const tag of this.event.tags) {
      const name = tag[0];
      if (name === "p") {
        participants.push(tag);
      } else if (!SINGLE_TAGS.has(name)) {
        continue;
      } else if (Object.hasOwn(this.values, name)) {
        this.fault(Kind.MALFORMED, `tag '${name}' appears more than once`);
      } else if (tag.length < 2) {
        this.fault(Kind.MALFORMED, `tag '${name}' has no value`);
      } else {
        this.values[name] = tag[1];
      }
    }
    return participants;
  }

  position() {
    const values = this.values;
    const problems = [];
    if (!uint(values.gseq ?? "")) problems.push("gseq");
    if (!isHex64(values.task)) problems.push("task");
    if (!uint(values.seq ?? "") || values.seq === "0") problems.push("seq");
    if (!OPS.has(values.op)) problems.push("op");
    if (problems.length) {
      this.fault(Kind.MALFORMED, `missing or ill-formed: ${problems.join(", ")}`);
      return null;
    }
    const place = {
      gseq: Number(values.gseq), task: values.task, seq: Number(values.seq), op: values.op,
    };
    this.place = { gseq: place.gseq, task: place.task, seq: place.seq };
    return place;
  }

  gprevOk(gseq) {
    const has = Object.hasOwn(this.values, "gprev");
    return (gseq === 0) === !has && (!has || isHex64(this.values.gprev));
  }

  rotation(participants) {
    const values = this.values;
    const signer = this.event.pubkey;
    if (!uint(values.gseq ?? "")) {
      this.fault(Kind.MALFORMED, "missing or ill-formed: gseq");
      return null;
    }
    const gseq = Number(values.gseq);
    this.place = { gseq };
    const bad = [];
    if (values.o !== String(gseq)) bad.push("o (must equal gseq)");
    if (!this.gprevOk(gseq)) bad.push("gprev (required exactly when gseq > 0)");
    if (!isHex64(values.new_key) || values.new_key === signer) {
      bad.push("new_key (another key, 64 hex)");
    }
    if (values.old_key !== signer) bad.push("old_key (must be the key that signed the rotation)");
    const stray = Object.keys(values)
      .filter((name) => TASK_TAGS.has(name) || ALL_PAYMENT_TAGS.has(name))
      .sort();
    for (const name of stray) bad.push(`${name} (not allowed on ${KEY_ROTATED})`);
    if (participants.length) bad.push(`p (not allowed on ${KEY_ROTATED})`);
    if (bad.length) this.fault(Kind.MALFORMED, `ill-formed tags: ${bad.join("; ")}`);
    if (this.checkContent(KEY_ROTATED) !== null) {
      this.fault(Kind.MALFORMED, "a rotation embeds no request");
    }
    let event;
    try {
      event = this.parsedContent().event;
    } catch {
      return gseq;
    }
    if (
      !isObject(event) ||
      event.new_key !== values.new_key ||
      event.old_key !== signer ||
      !isInt(event.at)
    ) {
      this.fault(Kind.MALFORMED, "content event must repeat new_key, old_key, at");
    }
    return gseq;
  }

  checkTags({ gseq, task, seq, op }, participants) {
    const values = this.values;
    const bad = [];
    const has = (name) => Object.hasOwn(values, name);
    if (values.o !== String(gseq)) bad.push("o (must equal gseq)");
    if (values.a !== `${this.kinds.listing}:${this.event.pubkey}:${task}`) {
      bad.push("a (must be the task's listing coordinate)");
    }
    if (!isHex64(values.state)) bad.push("state");
    if ((seq === 1) !== !has("prev") || (has("prev") && !isHex64(values.prev))) {
      bad.push("prev (required exactly when seq > 1)");
    }
    if (!this.gprevOk(gseq)) bad.push("gprev (required exactly when gseq > 0)");
    if ((op === "TaskCreated") !== (seq === 1)) bad.push("seq (1 exactly for TaskCreated)");
    if (!participants.length || !participants.every((t) => t.length >= 2 && isHex64(t[1]))) {
      bad.push("p (employer first, then the keys the transition concerns)");
    }
    const expected = PAYMENT_TAGS[op] ?? {};
    for (const [name, valid] of Object.entries(expected)) {
      if (!has(name) || !valid(values[name])) bad.push(name);
    }
    const optional = OPTIONAL_PAYMENT_TAGS[op] ?? [];
    const stray = Object.keys(values)
      .filter((n) => ALL_PAYMENT_TAGS.has(n) && !Object.hasOwn(expected, n) && !optional.includes(n))
      .sort();
    for (const name of stray) bad.push(`${name} (not allowed on ${op})`);
    for (const name of SWAP_TXIDS.filter(has).sort()) {
      if (!isHex64(values[name])) bad.push(name);
    }
    if (op === "SwapReported" && has("claim_txid") && has("refund_txid")) {
      bad.push("claim_txid and refund_txid (a swap is claimed or refunded)");
    }
    if (bad.length) this.fault(Kind.MALFORMED, `ill-formed tags: ${bad.join("; ")}`);
  }

  /** The embedded request (or null), after checking the content's shape. */
  checkContent(op) {
    let content;
    try {
      content = this.parsedContent();
    } catch {
      this.fault(Kind.MALFORMED, "content is not JSON");
      return null;
    }
    const keys = isObject(content) ? Object.keys(content).sort() : [];
    if (keys.join(",") !== CONTENT_KEYS.join(",")) {
      this.fault(Kind.MALFORMED, "content must be {event, request, v}");
      return null;
    }
    const problems = [];
    if (canonicalJson(content) !== this.event.content) problems.push("content is not canonical JSON");
    if (content.v !== 1) problems.push(`unknown content version ${pyRepr(content.v)}`);
    if (!isObject(content.event) || content.event.type !== op) {
      problems.push("content event.type differs from the op tag");
    }
    let request = null;
    if (isObject(content.request)) request = content.request;
    else if (content.request !== null) problems.push("content request is neither an event nor null");
    if (problems.length) this.fault(Kind.MALFORMED, problems.join("; "));
    return request;
  }

  checkRequest(request, task, op) {
    const eTag = this.event.tags.find((tag) => tag[0] === "e");
    if (request === null) {
      if (Object.hasOwn(this.values, "e")) {
        this.fault(Kind.BAD_EMBEDDED_REQUEST, "e tag names a request, none embedded");
      }
      return;
    }
    const requestId = String(request.id);
    if (eTag === undefined || eTag.length < 2) { // an e tag without a value names nothing
      this.fault(Kind.BAD_EMBEDDED_REQUEST, "request embedded without an e tag");
      return;
    }
    const verdict = verifyVerdict(request);
    if (verdict !== Verdict.OK) {
      this.fault(Kind.BAD_EMBEDDED_REQUEST, `embedded request: ${verdict}`, requestId);
      return;
    }
    const problems = [];
    if (eTag[1] !== request.id) problems.push("its id is not the e tag's");
    if (eTag.length < 4 || eTag[3] !== request.pubkey) {
      problems.push("its author is not the one the e tag names");
    }
    const requestTags = {};
    for (const tag of [...request.tags].reverse()) {
      if (tag.length >= 2) requestTags[tag[0]] = tag[1];
    }
    const verb = requestTags.op === undefined ? "None" : String(requestTags.op);
    if (!Object.hasOwn(REQUEST_OPS, verb) || !REQUEST_OPS[verb].includes(op)) {
      problems.push(`its op '${verb}' cannot cause ${op}`);
    }
    if (op === "AgreementAccepted" && this.contentEvent().proposed_by === request.pubkey) {
      problems.push("it accepts its own author's proposal");
    }
    const expectedKind = verb === "proof" ? this.kinds.proof : this.kinds.request;
    if (request.kind !== expectedKind) problems.push(`kind ${request.kind} (expected ${expectedKind})`);
    if (verb === "create") {
      if (task !== request.id && task !== milestoneOf(request.id, this.contentEvent())) {
        problems.push("the task id is not the create request's id");
      }
    } else if (requestTags.task !== task) {
      problems.push("its task tag names another task");
    }
    problems.push(...this.signerProblems(op, request.pubkey));
    if (problems.length) {
      this.fault(Kind.BAD_EMBEDDED_REQUEST, `embedded request: ${problems.join("; ")}`, requestId);
    }
  }

  signerProblems(op, signer) {
    const keys = this.event.tags.filter((t) => t[0] === "p" && t.length > 1).map((t) => t[1]);
    if (SIGNED_BY_EMPLOYER.has(op) && signer !== keys[0]) {
      return [`${op} must be signed by the employer (the first p tag)`];
    }
    if (SIGNED_BY_WORKER.has(op)) {
      const worker = this.contentEvent().worker_pubkey;
      if (worker === undefined) return [`${op} names no worker_pubkey`];
      if (signer !== worker) return [`${op} must be signed by its worker_pubkey`];
    }
    if (op === "SwapReported") {
      const role = this.values.swap_role ?? "";
      const place = Object.hasOwn(SWAP_REPORTERS, role) ? SWAP_REPORTERS[role] : undefined;
      if (place === undefined || keys.length <= place || keys[place] !== signer) {
        const who = place === 0 ? "the employer (first p tag)" : "the worker (second p tag)";
        return [`a ${role} swap must be reported by ${who}`];
      }
      if (this.contentEvent().role !== role) return ["the content event's role is not the swap_role tag's"];
    }
    return [];
  }
}

const INVOICE_FIELDS = {
  proof: "payout_invoice",
  "payout-invoice": "payout_invoice",
  "refund-invoice": "refund_invoice",
  "deposit-payout": "payout_invoice",
};

/** The payout terms a verified request signs in clear (payout_hash, payout_msat), or null.
 * Requests from before the terms carry only a BOLT11 invoice: the explorer does not decode it,
 * so their payouts read as unproven (the Python auditor decodes it). */
function payoutTerms(request) {
  const verb = tagValue(request, "op");
  if (!Object.hasOwn(INVOICE_FIELDS, String(verb))) return null;
  let content;
  try {
    content = JSON.parse(request.content);
  } catch {
    return null;
  }
  if (!isObject(content)) return null;
  const payoutHash = content.payout_hash;
  const payoutMsat = content.payout_msat;
  if (!isHex64(payoutHash) || !isInt(payoutMsat)) return null;
  return {
    signer: request.pubkey,
    op: String(verb),
    payout_hash: payoutHash,
    payout_msat: payoutMsat,
    signed: true,
    depositor: verb === "deposit-payout" ? (content.depositor ?? null) : null,
  };
}

function declaredAmount(created, name = "amount_msat") {
  return isInt(created[name]) ? created[name] : null;
}

/** The series a milestone's TaskCreated declares; null for a task on its own. Ill-typed fields
 * read as an impossible index, so the series check reports them. */
function declaredSeries(created, participants) {
  if (created.series_id === undefined || created.series_id === null) return null;
  const index = created.milestone_index;
  const count = created.milestone_count;
  return {
    series_id: String(created.series_id),
    index: isInt(index) ? index : -1,
    count: isInt(count) ? count : -1,
    funding_mode: created.funding_mode === undefined ? "None" : String(created.funding_mode),
    employer: participants.length && participants[0].length > 1 ? participants[0][1] : "",
  };
}

function newWorker(op, contentEvent, request) {
  if (op !== "TaskClaimed" && op !== "WorkerAssigned") return null;
  let named = contentEvent.worker_pubkey;
  if (request !== null && op === "TaskClaimed") {
    named = request.pubkey;
  } else if (request !== null) {
    try {
      const content = JSON.parse(request.content);
      named = isObject(content) ? content.worker_pubkey : null;
    } catch {
      named = null;
    }
  }
  return isHex64(named) ? named : null;
}

/**
 * Read a verified kind-3910 event against its own author (whether that author was the operator
 * key at its place is decided over the whole log). Returns {entry, findings}; entry is null
 * when the event cannot be placed in the log.
 */
export function parseEntry(event, kinds = DEFAULT_KINDS) {
  const reader = new Reader(event, kinds);
  const participants = reader.readTags();
  const values = reader.values;
  if (values.op === KEY_ROTATED) {
    const gseq = reader.rotation(participants);
    if (gseq === null) return { entry: null, findings: reader.findings };
    const entry = baseEntry(event, { gseq, task: "", seq: 0, op: KEY_ROTATED }, values);
    return { entry, findings: reader.findings };
  }
  const place = reader.position();
  if (place === null) return { entry: null, findings: reader.findings };
  reader.checkTags(place, participants);
  const request = reader.checkContent(place.op);
  reader.checkRequest(request, place.task, place.op);
  const embeddedOk = !reader.findings.some((f) => f.kind === Kind.BAD_EMBEDDED_REQUEST);
  const contentEvent = reader.contentEvent();
  const sealing = commitmentProblems(place.op, contentEvent, request, event.pubkey);
  if (sealing.length) reader.fault(Kind.MALFORMED, `private content: ${sealing.join("; ")}`);
  const created = place.op === "TaskCreated";
  const entry = {
    ...baseEntry(event, place, values),
    amount_msat: created ? declaredAmount(contentEvent) : null,
    fee_msat: created ? declaredAmount(contentEvent, "fee_msat") : null,
    series: created ? declaredSeries(contentEvent, participants) : null,
    participants: participants.filter((t) => t.length >= 2).map((t) => t[1]),
    terms: request !== null && embeddedOk ? payoutTerms(request) : null,
    signer: request !== null && embeddedOk ? String(request.pubkey) : null,
    worker: newWorker(place.op, contentEvent, embeddedOk ? request : null),
    request_id: request !== null ? String(request.id) : null,
  };
  return { entry, findings: reader.findings };
}

function baseEntry(event, place, values) {
  return {
    id: event.id,
    pubkey: event.pubkey,
    created_at: event.created_at,
    ...place,
    prev: isHex64(values.prev) ? values.prev : null,
    gprev: isHex64(values.gprev) ? values.gprev : null,
    values: { ...values },
    amount_msat: null,
    fee_msat: null,
    series: null,
    participants: [],
    terms: null,
    signer: null,
    worker: null,
    request_id: null,
  };
}
