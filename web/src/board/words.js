// How the board names taskhold's terms to people.

const CLAIM_MODES = {
  open: "first come: the first worker to claim gets it",
  apply: "by application: workers apply, the employer picks one",
  direct: "offered to one named worker",
  series: "a milestone of a series (its worker is the series')",
};

/** A claim mode in words (an unknown one as itself). */
export const claimModeWords = (mode) => CLAIM_MODES[mode] ?? String(mode);

/** The short form shown in the list. */
export const claimModeShort = (mode) => ({ open: "first come", apply: "apply", direct: "direct" })[mode] ?? String(mode);

const STATES = {
  DRAFT: "posted, not funded yet",
  PENDING_FUNDING: "awaiting the employer's payment",
  FUNDED: "funded, open to workers",
  CLAIMED: "a worker is on it",
  SUBMITTED: "proof sent, awaiting review",
  VERIFIED: "accepted, paying the worker",
  DISPUTED: "disputed, awaiting the arbiter",
  PAID: "the worker was paid",
  REFUNDED: "refunded to the employer",
  CANCELLED: "cancelled",
  EXPIRED: "funding expired",
};

export const stateWords = (state) => STATES[state] ?? "";
