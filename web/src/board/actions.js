// Which actions a key may take on a task in its state, mirroring taskhold's transition table
// (taskhold/tasks/machine.py): the page offers only what the server would accept, and says for
// each the `taskhold task` command that does it without a browser signer.

/** Who ``pubkey`` is on ``task``: employer, worker, arbiter or other (null: unknown). */
export function roleOf(task, pubkey, arbiters) {
  if (pubkey == null) return null;
  if (pubkey === task.employer_pubkey) return "employer";
  if (pubkey === task.worker_pubkey) return "worker";
  if (arbiters.includes(pubkey)) return "arbiter";
  return "other";
}

/**
 * The actions open on ``task`` to the key ``pubkey`` (every role's when it is null, for a
 * reader without a signer). Each is ``{op, label, who, inputs}``; ``inputs`` name the form's
 * fields.
 */
export function actionsFor(task, pubkey, arbiters) {
  const state = task.state;
  const role = roleOf(task, pubkey, arbiters);
  // a key that gave the task back or lost its claim may not take it again
  const mayTake = state === "FUNDED" && !(task.barred_workers ?? []).includes(pubkey);
  const offered = [];
  const offer = (roles, action) => {
    if (role === null ? true : roles.includes(role)) offered.push(action);
  };
  if (state === "DRAFT") {
    offer(["employer"], { op: "fund", label: "Fund (get the hold invoice)", who: "the employer", inputs: [] });
  }
  if (mayTake && task.claim_mode === "open") {
    offer(["other"], { op: "claim", label: "Claim this task", who: "a worker", inputs: [] });
  }
  if (mayTake && task.claim_mode === "direct" && (role === null || pubkey === task.direct_worker)) {
    offer(["other"], { op: "claim", label: "Claim this task", who: "the named worker", inputs: [] });
  }
  if (mayTake && task.claim_mode === "apply" && !(task.applicants ?? []).includes(pubkey)) {
    offer(["other"], { op: "apply", label: "Apply", who: "a worker", inputs: ["note"] });
  }
  if (state === "FUNDED" && task.claim_mode === "apply" && task.applicants.length > 0) {
    offer(["employer"], { op: "assign", label: "Make this applicant the worker", who: "the employer", inputs: ["worker_pubkey"] });
  }
  if (state === "CLAIMED") {
    offer(["worker"], { op: "proof", label: "Send the proof", who: "the worker", inputs: ["proof", "payout_invoice"] });
    if (task.proof == null) {
      offer(["worker"], { op: "unclaim", label: "Give the task back", who: "the worker", inputs: [] });
    }
  }
  if (state === "SUBMITTED") {
    offer(["employer"], { op: "approve", label: "Approve and pay", who: "the employer", inputs: [] });
    offer(["employer"], { op: "reject", label: "Reject", who: "the employer", inputs: ["reason"] });
  }
  const employerDisputes = arbiters.length > 0 && (state === "CLAIMED" || state === "SUBMITTED");
  const workerDisputes = state === "CLAIMED" && task.rejection_reason != null;
  if (employerDisputes) {
    offer(["employer"], { op: "dispute", label: "Open a dispute", who: "the employer", inputs: ["reason"] });
  }
  if (workerDisputes) {
    offer(["worker"], { op: "dispute", label: "Dispute the rejection", who: "the worker", inputs: ["reason"] });
  }
  if (["DRAFT", "PENDING_FUNDING", "FUNDED"].includes(state) && !task.refund_reason) {
    offer(["employer"], { op: "cancel", label: "Cancel the task", who: "the employer", inputs: ["reason"] });
  }
  return offered;
}

const SAFE = /^[A-Za-z0-9_.:/@%+=,-]+$/;

/** ``value`` as one shell word. */
export function shellWord(value) {
  const text = String(value);
  return SAFE.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/** The `taskhold task` command that does ``action`` on ``task`` from a terminal; null when
 * the command line has no such command (the Python client does). */
export function cliCommand(action, task, server) {
  const id = shellWord(task.task_id);
  const tail = `--server ${shellWord(server)} --key-file YOUR.key`;
  switch (action.op) {
    case "fund":
      return `taskhold task fund ${id} ${tail}`;
    case "claim":
    case "approve":
      return `taskhold task ${action.op} ${id} ${tail}`;
    case "proof": {
      const spec = task.acceptance ?? {};
      const names = [...(spec.required_fields ?? []), ...(spec.url_fields ?? [])];
      const unique = [...new Set(names)];
      const given = unique.map((name) => ` --field ${shellWord(`${name}=…`)}`).join("");
      return `taskhold task proof ${id}${given} --invoice YOUR_BOLT11_INVOICE ${tail}`;
    }
    case "reject":
    case "dispute":
    case "cancel":
      return `taskhold task ${action.op} ${id} --reason 'why, in a sentence' ${tail}`;
    default:
      return null;
  }
}

/** The command that posts a task, for a reader without a browser signer. */
export function createCommand(server) {
  return (
    `taskhold task create 'What is to be done' --amount-sat 5000 --description '…'` +
    ` --deadline 24h --claim-mode open --server ${shellWord(server)} --key-file YOUR.key`
  );
}
