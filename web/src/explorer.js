// The audit explorer: fetches the operator's log from the relays and checks it here, in the
// browser, trusting neither the server that served this page nor the relays. The server only
// suggests which key and relays to read (shown as such, to be checked against a key the user
// trusts); the relays are trusted for availability only: every entry is checked by the code in
// audit/, which makes the same findings as `taskhold audit`. Everything read from the log is
// put on the page as text.
import { decode as nip19Decode } from "nostr-tools/nip19";
import { getJson } from "./api.js";
import { auditLog } from "./audit/checks.js";
import { DEFAULT_KINDS, tagValue } from "./audit/entry.js";
import { Kind } from "./audit/findings.js";
import { isHex64 } from "./audit/nip01.js";
import { el } from "./dom.js";
import { fetchLog } from "./relay.js";

const TICK = "✓";
const CROSS = "✗";
const root = document.getElementById("explorer");

/** The operator key as hex, from hex or an npub; null when it is neither. */
export function operatorHex(text) {
  const value = text.trim();
  if (isHex64(value.toLowerCase())) return value.toLowerCase();
  try {
    const decoded = nip19Decode(value);
    return decoded.type === "npub" ? decoded.data : null;
  } catch {
    return null;
  }
}

function relayList(text) {
  return text
    .split(/[\s,]+/)
    .map((url) => url.trim())
    .filter((url) => /^wss?:\/\/./.test(url));
}

function kindsFrom(info) {
  const published = info?.kinds ?? {};
  const pick = (name, fallback) => (Number.isSafeInteger(published[name]) ? published[name] : fallback);
  return {
    entry: pick("log_entry", DEFAULT_KINDS.entry),
    proof: pick("proof", DEFAULT_KINDS.proof),
    request: pick("request", DEFAULT_KINDS.request),
    listing: pick("listing", DEFAULT_KINDS.listing),
    checkpoint: pick("checkpoint", DEFAULT_KINDS.checkpoint),
  };
}

function short(hex) {
  return typeof hex === "string" && hex.length > 16 ? `${hex.slice(0, 12)}…` : String(hex ?? "");
}

function when(createdAt) {
  const date = new Date(createdAt * 1000);
  return Number.isNaN(date.getTime()) ? String(createdAt) : date.toISOString().replace(".000Z", "Z");
}

/** The ids a finding accuses: the entries to mark with a cross. */
function accused(found) {
  if (found.kind === Kind.GAP) return [];
  if (found.kind === Kind.EQUIVOCATION) return found.event_ids;
  const id = found.location.event_id ?? found.event_ids[0];
  return id ? [id] : [];
}

function describe(found) {
  return `${found.kind.replaceAll("_", " ")}: ${found.detail}`;
}

function taskTitle(event) {
  try {
    const title = JSON.parse(event.content).event.title;
    return typeof title === "string" ? title : "";
  } catch {
    return "";
  }
}

function markCell(ok) {
  return el("td", { class: `mark ${ok ? "ok" : "bad"}`, "aria-label": ok ? "verified" : "problem" }, ok ? TICK : CROSS);
}

/** Rows for the log: each entry with a tick or a cross and why, gaps and equivocations as rows
 * of their own, events that took no place in the log (forged, foreign, unreadable) too. */
export function logRows(events, result) {
  const byId = new Map(events.filter((e) => e && typeof e.id === "string").map((e) => [e.id, e]));
  const placed = new Map(result.entries.map((entry) => [entry.id, entry]));
  const reasons = new Map();
  const others = [];
  const rows = [];
  for (const found of result.findings) {
    const ids = accused(found);
    if (found.kind === Kind.GAP) {
      const { gseq, gseq_last: last } = found.location;
      const text = gseq === last ? `entry ${gseq} missing` : `entries ${gseq}..${last} missing`;
      rows.push({ sort: [gseq, 0], row: el("tr", { class: "gap", "data-kind": "gap", "data-verdict": "bad", "data-first": gseq, "data-last": last },
        markCell(false), el("td", {}, gseq === last ? String(gseq) : `${gseq}–${last}`),
        el("td", { colspan: "4" }, `${text} — ${found.detail}`)) });
      continue;
    }
    if (found.kind === Kind.EQUIVOCATION && found.location.event_id === undefined) {
      const gseq = found.location.gseq;
      rows.push({ sort: [gseq, 1], row: el("tr", { class: "equivocation", "data-kind": "equivocation", "data-verdict": "bad", "data-gseq": gseq, "data-event-ids": found.event_ids.join(" ") },
        markCell(false), el("td", {}, String(gseq)),
        el("td", { colspan: "4" }, `equivocation: ${found.detail}: ${found.event_ids.join(" and ")}`)) });
    }
    if (!ids.length) {
      others.push(found);
      continue;
    }
    for (const id of ids) reasons.set(id, [...(reasons.get(id) ?? []), found]);
  }
  for (const entry of result.entries) {
    const problems = reasons.get(entry.id) ?? [];
    const event = byId.get(entry.id);
    const proofs = [];
    if (result.preimagesOk.has(entry.id)) proofs.push(`preimage ${TICK}`);
    if (result.payoutsProven.has(entry.id)) proofs.push(`payout proven ${TICK}`);
    const attributes = {
      class: "entry", "data-gseq": entry.gseq, "data-event-id": entry.id,
      "data-verdict": problems.length ? "bad" : "ok", "data-op": entry.op,
    };
    if (result.preimagesOk.has(entry.id)) attributes["data-preimage"] = "ok";
    if (result.payoutsProven.has(entry.id)) attributes["data-payout"] = "proven";
    const title = entry.op === "TaskCreated" && event ? taskTitle(event) : "";
    rows.push({ sort: [entry.gseq, 2], row: el("tr", attributes,
      markCell(!problems.length),
      el("td", {}, String(entry.gseq)),
      el("td", { title: entry.task }, entry.task ? `${short(entry.task)} #${entry.seq}` : "—"),
      el("td", {}, entry.op, title ? el("span", { class: "title" }, ` “${title}”`) : ""),
      el("td", { class: "time" }, when(entry.created_at)),
      el("td", { class: "checks" }, problems.length
        ? el("ul", {}, ...problems.map((f) => el("li", {}, describe(f))))
        : `id, signature and chain ${TICK}${proofs.length ? `; ${proofs.join("; ")}` : ""}`)) });
  }
  for (const [id, problems] of reasons) {
    if (placed.has(id)) continue;
    const event = byId.get(id);
    const gseq = problems.find((f) => f.location.gseq !== undefined)?.location.gseq;
    const op = event && Array.isArray(event.tags) ? String(safeTag(event, "op") ?? "") : "";
    rows.push({ sort: [gseq ?? Number.MAX_SAFE_INTEGER, 3], row: el("tr", { class: "refused", "data-verdict": "bad", "data-event-id": id, "data-gseq": gseq ?? "" },
      markCell(false), el("td", {}, gseq === undefined ? "?" : String(gseq)),
      el("td", {}, `event ${short(id)}`), el("td", {}, op),
      el("td", { class: "time" }, event && Number.isSafeInteger(event.created_at) ? when(event.created_at) : ""),
      el("td", { class: "checks" }, el("ul", {}, ...problems.map((f) => el("li", {}, describe(f)))))) });
  }
  rows.sort((a, b) => a.sort[0] - b.sort[0] || a.sort[1] - b.sort[1]);
  return { rows: rows.map((r) => r.row), others };
}

function safeTag(event, name) {
  try {
    return tagValue(event, name);
  } catch {
    return undefined;
  }
}

function renderResult(section, operator, fetched, result) {
  section.replaceChildren();
  const reports = el("ul", { id: "relay-reports" }, ...fetched.relays.map((report) =>
    el("li", { "data-relay": report.url, "data-ok": String(report.ok) },
      `${report.ok ? TICK : CROSS} ${report.url}: `,
      report.ok ? `${report.entries} events read in ${report.requests} requests` : `not read (${report.error})`,
      report.notices.length ? ` — notices: ${report.notices.join("; ")}` : "")));
  if (!fetched.readable) {
    section.append(el("p", { id: "summary", class: "bad", "data-status": "no-relay", "data-entries": "0", "data-problems": "0" },
      `${CROSS} No relay could be read to the end: nothing was verified.`), reports);
    return;
  }
  const problems = result.findings.length;
  const { entries, payouts, payouts_proven: proven } = result.summary;
  const status = problems ? "findings" : "clean";
  const text = problems
    ? `${CROSS} ${entries} entries, ${problems} problem${problems === 1 ? "" : "s"}`
    : `${TICK} ${entries} entries, all verified`;
  const summary = el("p", { id: "summary", class: problems ? "bad" : "ok", "data-status": status,
    "data-entries": entries, "data-problems": problems, "data-payouts": payouts, "data-payouts-proven": proven },
    text, ` — payouts proven by their payee's signed hash and preimage: ${proven} of ${payouts}`);
  const { rows, others } = logRows(fetched.entries, result);
  const table = el("table", { id: "log" },
    el("thead", {}, el("tr", {}, ...["", "gseq", "task", "op", "time", "checks"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
  section.append(summary, el("p", {}, `Operator ${operator}; keys the log was handed to: ${result.keys.join(", ")}`), reports, table);
  if (others.length) {
    section.append(el("h2", {}, "Other findings"),
      el("ul", { id: "other-findings" }, ...others.map((f) => el("li", { "data-kind": f.kind, class: "bad" }, `${CROSS} ${describe(f)} (${f.event_ids.join(", ")})`))));
  }
}

async function verify(form, section, kinds) {
  const operator = operatorHex(form.operator.value);
  const relays = relayList(form.relays.value);
  root.dataset.state = "running";
  section.replaceChildren(el("p", { id: "progress" }, `Reading the log from ${relays.length} relay(s)…`));
  if (operator === null || !relays.length) {
    section.replaceChildren(el("p", { id: "input-error", class: "bad" },
      operator === null ? "The operator key must be 64 hex characters or an npub." : "Give at least one ws:// or wss:// relay."));
    root.dataset.state = "done";
    return;
  }
  try {
    const fetched = await fetchLog(relays, operator, { kinds });
    const result = fetched.readable
      ? auditLog(fetched.entries, operator, { kinds, checkpoints: fetched.checkpoints, deletions: fetched.deletions })
      : null;
    renderResult(section, operator, fetched, result);
  } finally {
    root.dataset.state = "done";
  }
}

async function start() {
  const params = new URLSearchParams(window.location.search);
  let info = null;
  try {
    info = await getJson("/v1/info");
  } catch {
    info = null; // the explorer works without this server: the user types the key and relays
  }
  const kinds = kindsFrom(info);
  const fromUser = params.has("operator") || params.has("relay");
  const operatorValue = params.get("operator") ?? info?.operator_pubkey ?? "";
  const relaysValue = params.has("relay") ? params.getAll("relay") : (info?.relays ?? []);
  const form = el("form", { id: "audit-form" },
    el("label", {}, "Operator key (hex or npub) ", el("input", { id: "operator", name: "operator", size: "70", spellcheck: "false" })),
    el("label", {}, "Relays (one per line) ", el("textarea", { id: "relays", name: "relays", rows: "3", cols: "60", spellcheck: "false" })),
    el("button", { id: "verify", type: "submit" }, "Verify"));
  form.operator.value = operatorValue;
  form.relays.value = relaysValue.join("\n");
  const origin = el("p", { id: "defaults-origin", class: "notice", "data-source": fromUser ? "address" : "server" },
    fromUser
      ? "Key and relays taken from this page's address — check the key against one you trust."
      : "Key and relays taken from this server — check it against a key you trust: a dishonest server could name another operator's log.");
  const section = el("section", { id: "result" });
  root.replaceChildren(
    el("h1", {}, "Audit explorer"),
    el("p", {}, "Your browser reads the operator's signed log from the relays and checks every entry itself: ids and signatures, the per-task and operator-wide chains, gaps and equivocation, preimages and payout proofs. Neither this server nor the relays are trusted, except to deliver the events."),
    origin, form, section);
  form.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    origin.dataset.source = "user";
    origin.textContent = "Checking the key and relays you entered.";
    verify(form, section, kinds).catch(showFailure);
  });
  root.dataset.ready = "true";
  await verify(form, section, kinds);
}

function showFailure(error) {
  root.dataset.state = "done";
  root.append(el("p", { id: "failure", class: "bad" }, `The explorer failed: ${error && error.message ? error.message : error}`));
}

start().catch(showFailure);
