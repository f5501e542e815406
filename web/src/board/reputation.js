// One key's reputation: its score and per-role figures as taskhold's indexer reads them from
// the public log, the log range they cover, and the key's tasks on this taskhold.
import { getReputation, listTasks } from "../api.js";
import { el, fields, formatMsat, shortKey } from "../dom.js";

const HEX64 = /^[0-9a-f]{64}$/;

/** One row per figure, one column per role (employer, worker, …). */
function roleTable(roles) {
  const roleNames = Object.keys(roles);
  const figures = [...new Set(Object.values(roles).flatMap((metrics) => Object.keys(metrics)))];
  const head = el("tr", {}, el("th", {}, ""), ...roleNames.map((role) => el("th", { "data-role": role }, `as ${role}`)));
  const rows = figures.map((figure) =>
    el("tr", {}, el("th", {}, figure.replaceAll("_", " ")), ...roleNames.map((role) => el("td", {}, roles[role][figure] ?? "—"))),
  );
  return el("table", { id: "roles" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

async function tasksOf(pubkey, role) {
  const { tasks } = await listTasks({ [role]: pubkey, limit: 20 });
  if (tasks.length === 0) return el("p", {}, "none");
  return el(
    "ul",
    {},
    ...tasks.map((task) => el("li", {}, el("a", { href: `/tasks/${encodeURIComponent(task.task_id)}` }, task.title ?? task.task_id), ` — ${formatMsat(task.amount_msat)}, ${task.state}`)),
  );
}

/** Renders ``pubkey``'s reputation page into ``root``. */
export async function showReputation(root, pubkey) {
  if (!HEX64.test(pubkey)) {
    root.replaceChildren(el("p", { class: "bad" }, "A reputation page is for a 64-character hex public key."));
    return;
  }
  const card = await getReputation(pubkey);
  document.title = `${shortKey(pubkey)} — taskhold reputation`;
  root.replaceChildren(
    el("h1", {}, "Reputation of ", el("code", { id: "reputation-key" }, pubkey)),
    fields([
      ["Score", el("span", { id: "score" }, `${card.score} / 1000`)],
      ["Record", card.has_record ? "has taken part in tasks here" : "no task on this taskhold's log yet"],
      ["From the log", `entries ${card.gseq_from ?? "—"} to ${card.gseq_to ?? "—"}, reviews to ${card.rseq_to ?? "—"} (score version ${card.version})`],
    ]),
    el("h2", {}, "By role"),
    roleTable(card.roles ?? {}),
    el("h2", {}, "Tasks as employer"),
    await tasksOf(pubkey, "employer"),
    el("h2", {}, "Tasks as worker"),
    await tasksOf(pubkey, "worker"),
  );
}
