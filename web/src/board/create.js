// Posting a task from the board: the employer's create request (title, description, amount,
// deadline, claim mode, the proof's fields), signed by their NIP-07 signer; the page then
// opens the new task, where it is funded. Without a signer: the command that does it.
import { decode as decodeNip19 } from "nostr-tools/nip19";
import { el, labelled } from "../dom.js";
import { createCommand } from "./actions.js";
import { hasSigner } from "./signer.js";
import { onSubmit, sendSigned } from "./send.js";

const HEX64 = /^[0-9a-f]{64}$/;

function names(text) {
  return String(text ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "");
}

/** A worker's key as hex, given as hex or npub; throws saying what is wrong. */
function workerKey(text) {
  const given = String(text ?? "").trim();
  if (HEX64.test(given)) return given;
  try {
    const decoded = decodeNip19(given);
    if (decoded.type === "npub") return decoded.data;
  } catch {
    // said below
  }
  throw new Error("the named worker must be an npub or a 64-character hex public key");
}

/** The create request's content, as taskhold's client builds it, from the form's values. */
export function createBody(values, now = Math.floor(Date.now() / 1000)) {
  const hours = Number(values.get("deadline_hours"));
  const sat = Number(values.get("amount_sat"));
  if (!Number.isInteger(sat) || sat <= 0) throw new Error("the amount must be a whole number of sat");
  if (!(hours > 0)) throw new Error("the deadline must be some hours from now");
  const body = {
    title: String(values.get("title") ?? "").trim(),
    description: String(values.get("description") ?? "").trim(),
    amount_msat: sat * 1000,
    deadline_at: now + Math.round(hours * 3600),
    claim_mode: String(values.get("claim_mode")),
  };
  const required = names(values.get("required_fields"));
  const urls = names(values.get("url_fields"));
  if (required.length || urls.length) body.acceptance = { required_fields: required, url_fields: urls };
  if (body.claim_mode === "direct") body.direct_worker = workerKey(values.get("direct_worker"));
  return body;
}

/** The "post a task" section: the form with a signer, the CLI command without. */
export function createSection(kinds) {
  const section = el("section", { id: "post-task" }, el("h2", {}, "Post a task"));
  if (!hasSigner()) {
    section.append(
      el("p", {}, "No Nostr signer (NIP-07 extension) in this browser. Post a task from a terminal:"),
      el("pre", { class: "cli" }, el("code", {}, createCommand(location.origin))),
    );
    return section;
  }
  const form = el(
    "form",
    { id: "create-task", class: "action" },
    labelled("Title", el("input", { name: "title", required: true, maxlength: 200 })),
    labelled("Description", el("textarea", { name: "description", rows: 3 })),
    labelled("Amount (sat)", el("input", { name: "amount_sat", type: "number", min: 1, step: 1, required: true })),
    labelled("Deadline (hours from now)", el("input", { name: "deadline_hours", type: "number", min: 1, value: 24, required: true })),
    labelled(
      "Who may take it",
      el(
        "select",
        { name: "claim_mode" },
        el("option", { value: "open" }, "first come"),
        el("option", { value: "apply" }, "by application"),
        el("option", { value: "direct" }, "one named worker"),
      ),
    ),
    labelled("Named worker (npub or hex; only for one named worker)", el("input", { name: "direct_worker" })),
    labelled("Proof fields the worker must fill (comma-separated)", el("input", { name: "required_fields" })),
    labelled("Proof fields that must be links (comma-separated)", el("input", { name: "url_fields" })),
    el("button", { type: "submit" }, "Post the task (signed by your signer)"),
  );
  onSubmit(
    form,
    (values) => sendSigned({ kind: kinds.request, op: "create", body: createBody(values) }),
    (task) => {
      location.assign(`/tasks/${encodeURIComponent(task.task_id)}`);
    },
  );
  section.append(form);
  return section;
}
