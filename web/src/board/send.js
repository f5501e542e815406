// One write from the page: sign the request with the user's NIP-07 signer, post it, and say
// what came of it. Refusals (the signer's or the server's problem+json) are shown whole, in
// the page, never swallowed.
import { ApiRefusal, getInfo, getReputation, postSigned, writePath } from "../api.js";
import { el } from "../dom.js";
import { signRequest } from "./signer.js";

let reputationOn = null;

/** The proof of work taskhold asks of ``pubkey`` now: its reputation policy's, or none where
 * this taskhold keeps no reputation. */
async function powBitsFor(pubkey) {
  reputationOn ??= getInfo().then((info) => info.reputation != null);
  if (!(await reputationOn)) return 0;
  return (await getReputation(pubkey)).policy?.pow_bits ?? 0;
}

/** Signs and posts ``op`` with ``body``; the server's answer (the task), or throws. */
export async function sendSigned({ kind, op, taskId = null, body, extraTags = [] }) {
  const { event, idempotencyKey } = await signRequest({ kind, op, taskId, body, extraTags, powBitsFor });
  return postSigned(writePath(op, taskId), event, idempotencyKey);
}

/** An alert saying why a write did not happen: the server's title and detail, or the signer's
 * or the page's own reason. */
export function refusalNotice(error) {
  if (error instanceof ApiRefusal) {
    return el(
      "div",
      { class: "refusal", role: "alert", "data-code": error.code },
      el("strong", {}, `Refused: ${error.title}`),
      error.detail ? el("p", {}, error.detail) : null,
    );
  }
  return el(
    "div",
    { class: "refusal", role: "alert", "data-code": "page" },
    el("strong", {}, "Not sent"),
    el("p", {}, error instanceof Error ? error.message : String(error)),
  );
}

/**
 * Wires ``form`` to run ``act`` on submit: its button is disabled meanwhile, a refusal is shown
 * in the form's ``.outcome`` and ``done`` gets the answer.
 */
export function onSubmit(form, act, done) {
  const outcome = el("div", { class: "outcome", "aria-live": "polite" });
  form.append(outcome);
  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const buttons = form.querySelectorAll("button");
    for (const button of buttons) button.disabled = true;
    outcome.replaceChildren(el("p", { class: "pending" }, "Waiting for your signer and taskhold…"));
    try {
      const answer = await act(new FormData(form));
      outcome.replaceChildren();
      await done(answer);
    } catch (error) {
      outcome.replaceChildren(refusalNotice(error));
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  });
}
