// The form of each action on a task: its inputs, and the request body taskhold expects for it
// (as taskhold/client.py builds them). Nothing here asks for a key: the signer signs.
import { getTask } from "../api.js";
import { el, labelled, formatMsat } from "../dom.js";
import { payoutTerms } from "./bolt11.js";
import { onSubmit, sendSigned } from "./send.js";

/** The proof's field names, from the task's acceptance spec (none: a free note). */
export function proofFieldNames(task) {
  const spec = task.acceptance ?? {};
  return [...new Set([...(spec.required_fields ?? []), ...(spec.url_fields ?? [])])];
}

function inputsOf(action, task) {
  const parts = [];
  for (const input of action.inputs) {
    if (input === "reason" || input === "note") {
      const label = input === "note" ? "Your application note" : "Reason (the other side reads it)";
      parts.push(labelled(label, el("textarea", { name: input, rows: 2, required: action.op !== "cancel" })));
    } else if (input === "proof") {
      const names = proofFieldNames(task);
      for (const name of names) {
        parts.push(labelled(`Proof: ${name}`, el("input", { name: `proof.${name}`, required: true, "data-proof-field": name })));
      }
      if (names.length === 0) {
        parts.push(labelled("Proof: what you did, or where to see it", el("textarea", { name: "proof.note", rows: 2 })));
      }
    } else if (input === "worker_pubkey") {
      const choices = task.applicants.map((pubkey) => el("option", { value: pubkey }, pubkey));
      parts.push(labelled("Applicant", el("select", { name: "worker_pubkey", required: true }, ...choices)));
    } else if (input === "payout_invoice") {
      parts.push(
        labelled(
          `Your payout invoice (BOLT11, exactly ${formatMsat(task.payout_msat)}), from your own wallet`,
          el("textarea", { name: "payout_invoice", rows: 3, required: true, spellcheck: "false" }),
        ),
      );
    }
  }
  return parts;
}

/** What ``op``'s signed content holds, from the form's values. */
async function requestOf(action, task, values, kinds) {
  const op = action.op;
  if (op === "reject" || op === "dispute" || op === "cancel") {
    return { kind: kinds.request, body: { reason: String(values.get("reason") ?? "").trim() } };
  }
  if (op === "assign") {
    return { kind: kinds.request, body: { worker_pubkey: String(values.get("worker_pubkey") ?? "") } };
  }
  if (op === "apply") {
    return { kind: kinds.request, body: { note: String(values.get("note") ?? "").trim() } };
  }
  if (op === "proof") {
    const proof = {};
    for (const [name, value] of values.entries()) {
      if (name.startsWith("proof.") && String(value).trim() !== "") proof[name.slice(6)] = String(value).trim();
    }
    const invoice = String(values.get("payout_invoice") ?? "").trim();
    const terms = payoutTerms(invoice);
    // the proof names the newest log entry the worker saw, read now, as taskhold requires
    const { log_head: head } = await getTask(task.task_id);
    return {
      kind: kinds.proof,
      body: { proof, payout_invoice: invoice, payout_hash: terms.paymentHash, payout_msat: terms.amountMsat },
      extraTags: head ? [["prev", head]] : [],
    };
  }
  return { kind: kinds.request, body: {} };
}

/** The form that does ``action`` on ``task`` with the signer; ``done`` gets the new task. */
export function actionForm(action, task, kinds, done) {
  const form = el(
    "form",
    { class: "action", "data-op": action.op },
    ...inputsOf(action, task),
    el("button", { type: "submit" }, action.label),
  );
  onSubmit(
    form,
    async (values) => {
      const request = await requestOf(action, task, values, kinds);
      return sendSigned({ ...request, op: action.op, taskId: task.task_id });
    },
    done,
  );
  return form;
}
