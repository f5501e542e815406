// One task's page: its fields, the invoice to pay while it awaits funding, its timeline from
// the public log, and what the reader may do next: through their NIP-07 signer when the
// browser has one, else the `taskhold task` command for each step. The page follows the task
// (it reads it again every few seconds) until it is closed.
import { getInfo, getTask, getTransitions } from "../api.js";
import { el, fields, formatMsat, formatTime, keyLink } from "../dom.js";
import { actionsFor, cliCommand, roleOf } from "./actions.js";
import { actionForm } from "./forms.js";
import { hasSigner, signerPubkey } from "./signer.js";
import { timelineSection } from "./timeline.js";
import { claimModeWords, stateWords } from "./words.js";

const FOLLOW_MS = 2000;
const CLOSED = new Set(["PAID", "REFUNDED", "CANCELLED", "EXPIRED"]);

function proofView(proof) {
  if (proof == null || typeof proof !== "object") return null;
  return el("dl", { class: "proof" }, ...Object.entries(proof).flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, typeof value === "string" ? value : JSON.stringify(value))]));
}

function summary(task) {
  const spec = task.acceptance ?? {};
  const asked = [...(spec.required_fields ?? []), ...(spec.url_fields ?? [])];
  return fields([
    ["State", el("span", { id: "task-state", "data-state": task.state }, `${task.state}`, el("span", { class: "hint" }, ` — ${stateWords(task.state)}`))],
    ["Amount", `${formatMsat(task.amount_msat)} (the worker gets ${formatMsat(task.payout_msat)})`],
    ["Deadline", formatTime(task.deadline_at)],
    ["Who may take it", claimModeWords(task.claim_mode)],
    ["Employer", keyLink(task.employer_pubkey)],
    ["Worker", task.worker_pubkey ? keyLink(task.worker_pubkey) : "nobody yet"],
    ["Description", task.visibility === "private" ? "(private: sealed to the parties)" : el("p", { id: "task-description", class: "text" }, task.description ?? "")],
    ["Proof asks for", asked.length ? asked.join(", ") : "nothing in particular"],
    ...(task.claim_mode === "apply" ? [["Applicants", task.applicants.length ? el("span", {}, ...task.applicants.flatMap((pubkey) => [keyLink(pubkey), " "])) : "none yet"]] : []),
    ...(task.proof ? [["Proof", proofView(task.proof)]] : []),
    ...(task.rejection_reason ? [["Rejected because", task.rejection_reason]] : []),
    ...(task.dispute ? [["Dispute", `opened ${formatTime(task.dispute.opened_at)}: ${task.dispute.reason ?? ""}`]] : []),
    ...(task.refund_reason ? [["Refund", task.refund_reason]] : []),
  ]);
}

/** The hold invoice to pay (the first funding, or a renewal), with a wallet link. */
function invoiceSection(task) {
  const pending = task.state === "PENDING_FUNDING" && task.funding ? task.funding : task.renewal;
  if (pending == null) return null;
  const invoice = pending.payment_request;
  return el(
    "section",
    { id: "funding" },
    el("h2", {}, task.state === "PENDING_FUNDING" ? "Awaiting funding" : "Renewal to pay"),
    el("p", {}, `The employer pays this hold invoice of ${formatMsat(pending.amount_msat)} from their own wallet. The money stays theirs until the task is decided: taskhold settles it only when the worker is paid, and cancels it otherwise.`),
    el("pre", { class: "invoice" }, el("code", { id: "funding-invoice" }, invoice)),
    el("a", { href: `lightning:${invoice}`, id: "funding-link" }, "Open in your wallet"),
    pending.expires_at ? el("p", { class: "hint" }, `Pay before ${formatTime(pending.expires_at)}.`) : null,
  );
}

function actionsSection(task, info, viewer, rerender) {
  const section = el("section", { id: "actions" }, el("h2", {}, "Act on this task"));
  if (CLOSED.has(task.state)) {
    section.append(el("p", {}, "This task is closed; nothing can change it any more."));
    return section;
  }
  if (viewer.pubkey === null) {
    section.append(
      el("p", { id: "no-signer" }, viewer.problem ?? "No Nostr signer (NIP-07 extension) in this browser. Each step is a command of taskhold's CLI, signed by your key file on your machine:"),
    );
    for (const action of actionsFor(task, null, info.arbiters)) {
      const command = cliCommand(action, task, location.origin);
      section.append(
        el("div", { class: "cli-step", "data-op": action.op }, el("h3", {}, `${action.label} (${action.who})`), command ? el("pre", { class: "cli" }, el("code", {}, command)) : el("p", {}, "Not in the CLI yet: use taskhold's Python client (TaskholdClient).")),
      );
    }
    return section;
  }
  const role = roleOf(task, viewer.pubkey, info.arbiters);
  section.append(el("p", { id: "signed-in" }, `Your signer's key `, keyLink(viewer.pubkey), ` — you are ${role === "other" ? "not a party to this task" : `its ${role}`}.`));
  const offered = actionsFor(task, viewer.pubkey, info.arbiters);
  if (offered.length === 0) section.append(el("p", { id: "nothing-to-do" }, "Nothing for this key to do in this state."));
  for (const action of offered) section.append(actionForm(action, task, info.kinds, rerender));
  return section;
}

async function viewerOf() {
  if (!hasSigner()) return { pubkey: null, problem: null };
  try {
    return { pubkey: await signerPubkey(), problem: null };
  } catch (error) {
    return { pubkey: null, problem: `Your Nostr signer gave no key (${error.message}); meanwhile, each step is a command of taskhold's CLI:` };
  }
}

/** Renders task ``taskId`` into ``root`` and follows it until it is closed. */
export async function showTask(root, taskId) {
  const info = await getInfo();
  let shownVersion = null;
  async function render() {
    const [task, { transitions }, viewer] = await Promise.all([getTask(taskId), getTransitions(taskId), viewerOf()]);
    shownVersion = task.version;
    document.title = `${task.title} — taskhold`;
    const sections = [
      el("h1", { id: "task-title" }, task.title ?? taskId),
      summary(task),
      invoiceSection(task),
      actionsSection(task, info, viewer, () => render()),
      timelineSection(transitions, info, taskId),
    ];
    root.replaceChildren(...sections.filter((section) => section !== null));
    root.dataset.version = String(task.version);
    return task;
  }
  let task = await render();
  while (!CLOSED.has(task.state)) {
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
    const now = await getTask(taskId);
    task = now.version === shownVersion ? now : await render();
  }
}
