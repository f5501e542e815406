// A task's timeline: its transitions as the API lists them, each matched with its entry in the
// public log, read from the operator's relays. The page checks each entry here, in the browser
// (its id and signature, its author the operator, its op and its link to the entry before),
// and marks it ✓, ✗, or … while the relays do not have it yet. The whole log's audit (chains
// across tasks, gaps, payments) is the explorer's job, at /audit.
import { verifyEvent } from "nostr-tools/pure";
import { el, formatTime, keyLink } from "../dom.js";
import { taskEntries } from "./relay-log.js";

const RECHECK_MS = 1500;
const RECHECKS = 20;

const tagOf = (entry, name) => entry.tags?.find((tag) => Array.isArray(tag) && tag[0] === name)?.[1];

/** Whether ``entry`` is the operator's valid log entry for ``transition`` (seq = version),
 * linked to ``previous`` (the checked entry before it, if any). */
export function entryChecks(entry, transition, previous, operator) {
  if (entry == null || entry.pubkey !== operator) return false;
  if (tagOf(entry, "op") !== transition.event_type) return false;
  if (previous != null && tagOf(entry, "prev") !== previous.id) return false;
  try {
    return verifyEvent({ ...entry }); // a copy: verifyEvent marks the object it checked
  } catch {
    return false;
  }
}

function actorOf(transition, operator) {
  const actor = transition.actor;
  if (typeof actor === "string" && /^[0-9a-f]{64}$/.test(actor) && actor !== operator) return keyLink(actor);
  return "taskhold";
}

const MARKS = {
  true: ["✓", "ok mark", "its log entry's id and operator signature check out"],
  false: ["✗", "bad mark", "its log entry does not check out: wrong signature, author or chain"],
  pending: ["…", "hint mark", "its log entry is not on the relays yet"],
};

function mark(item, verdict, entry) {
  const [symbol, style, title] = MARKS[verdict];
  item.dataset.verified = verdict;
  item.querySelector(".mark").replaceChildren(symbol);
  item.querySelector(".mark").className = style;
  item.querySelector(".mark").title = title;
  if (entry) item.querySelector(".entry-id").replaceChildren(` ${entry.id.slice(0, 12)}…`);
}

/** Matches the transitions with their relay entries, again while some are missing. */
async function checkAgainstLog(list, transitions, info, taskId) {
  const query = { operator: info.operator_pubkey, logKind: info.kinds.log_entry, taskId };
  for (let round = 0; round < RECHECKS; round += 1) {
    const entries = await taskEntries(info.relays ?? [], query);
    if (!list.isConnected) return; // the page was drawn again meanwhile
    const bySeq = new Map(entries.filter((entry) => entry.pubkey === info.operator_pubkey).map((entry) => [tagOf(entry, "seq"), entry]));
    let previous = null;
    let missing = 0;
    transitions.forEach((transition, index) => {
      const entry = bySeq.get(String(transition.version));
      const item = list.children[index];
      if (entry === undefined) {
        missing += 1;
        previous = null;
        mark(item, "pending", null);
        return;
      }
      const verdict = entryChecks(entry, transition, previous, info.operator_pubkey);
      mark(item, String(verdict), entry);
      previous = entry;
    });
    if (missing === 0) return;
    await new Promise((resolve) => setTimeout(resolve, RECHECK_MS));
  }
}

/** The timeline section of a task's page; its marks fill in as the relays answer. */
export function timelineSection(transitions, info, taskId) {
  const list = el("ol", { id: "timeline" });
  for (const transition of transitions) {
    list.append(
      el(
        "li",
        { "data-verified": "pending", "data-version": transition.version },
        el("span", { class: "hint mark" }, "…"),
        ` ${formatTime(transition.at)} · ${transition.event_type} by `,
        actorOf(transition, info.operator_pubkey),
        ` → ${transition.state_after}`,
        el("code", { class: "entry-id", title: "log entry id" }),
      ),
    );
  }
  checkAgainstLog(list, transitions, info, taskId).catch((error) => {
    list.after(el("p", { class: "bad" }, `The log could not be checked: ${error.message}`));
  });
  return el(
    "section",
    { id: "timeline-section" },
    el("h2", {}, "Timeline"),
    el(
      "p",
      { class: "hint" },
      "From the public log on the operator's relays: ✓ means the entry's id and the operator's signature check out here, in your browser, and it links to the entry before. The full audit of the log is at ",
      el("a", { href: "/audit" }, "/audit"),
      ".",
    ),
    list,
  );
}
