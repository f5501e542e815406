// What the explorer reports, in the shape of taskhold/audit/findings.py: a kind, a place in the
// log ({gseq, gseq_last, task, seq, event_id}, only the fields known) and the ids involved.
// The kinds' names are the Python auditor's, so the two can be compared finding for finding.

export const Kind = Object.freeze({
  BAD_ID: "bad_id",
  BAD_SIGNATURE: "bad_signature",
  WRONG_AUTHOR: "wrong_author",
  MALFORMED: "malformed",
  GAP: "gap",
  EQUIVOCATION: "equivocation",
  BROKEN_GPREV: "broken_gprev",
  BROKEN_PREV: "broken_prev",
  SEQ_GAP: "seq_gap",
  TIME_WENT_BACKWARDS: "time_went_backwards",
  BAD_EMBEDDED_REQUEST: "bad_embedded_request",
  PREIMAGE_MISMATCH: "preimage_mismatch",
  CHECKPOINT_MISMATCH: "checkpoint_mismatch",
  OPERATOR_DELETION: "operator_deletion",
  BAD_SPLIT: "bad_split",
  BAD_SERIES: "bad_series",
  BAD_ROUND: "bad_round",
  UNPROVEN_PAYOUT: "unproven_payout",
});

const LOCATION_FIELDS = ["gseq", "gseq_last", "task", "seq", "event_id"];

export function location(fields = {}) {
  const where = {};
  for (const name of LOCATION_FIELDS) {
    if (fields[name] !== undefined && fields[name] !== null) where[name] = fields[name];
  }
  return where;
}

export function finding(kind, where, detail, eventIds = []) {
  return { kind, location: location(where), detail, event_ids: [...eventIds] };
}

/** Where an entry is, for the findings about it. */
export function entryLocation(entry) {
  return { gseq: entry.gseq, task: entry.task, seq: entry.seq, event_id: entry.id };
}

/** A set of findings: the same finding reported twice is kept once (Python's set). */
export class Findings {
  constructor() {
    this.byKey = new Map();
  }

  add(found) {
    const key = JSON.stringify([found.kind, found.location, found.detail, found.event_ids]);
    if (!this.byKey.has(key)) this.byKey.set(key, found);
  }

  addAll(list) {
    for (const found of list) this.add(found);
  }

  /** In the Python auditor's order: by gseq (none first), kind, detail. */
  sorted() {
    const order = (f) => (f.location.gseq === undefined ? -1 : f.location.gseq);
    return [...this.byKey.values()].sort(
      (a, b) =>
        order(a) - order(b) ||
        (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0) ||
        (a.detail < b.detail ? -1 : a.detail > b.detail ? 1 : 0),
    );
  }
}
