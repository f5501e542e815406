// The board: open tasks (FUNDED, the one state in which a worker can take a task), newest
// first, a page at a time with the API's ``next_before`` cursor.
import { listTasks } from "../api.js";
import { el, formatMsat, formatTime } from "../dom.js";
import { claimModeShort } from "./words.js";

const PAGE_SIZE = 20;

/** Tasks a page: ``?per_page=N`` in the address (1 to 200, as the API allows), else 20. */
function pageSize() {
  const asked = Number(new URLSearchParams(location.search).get("per_page"));
  return Number.isInteger(asked) && asked >= 1 && asked <= 200 ? asked : PAGE_SIZE;
}

function row(task, withState = false) {
  return el(
    "li",
    { "data-task-id": task.task_id, class: "task" },
    el("a", { href: `/tasks/${encodeURIComponent(task.task_id)}`, class: "title" }, `${task.title ?? task.task_id} — ${formatMsat(task.amount_msat)}`),
    el(
      "span",
      { class: "meta" },
      ` · due ${formatTime(task.deadline_at)} · ${claimModeShort(task.claim_mode)}`,
      withState ? ` · ${task.state}` : null,
    ),
  );
}

/** The open-task list in ``root``, with a button for the next page while there is one. */
export async function showOpenTasks(root) {
  const list = el("ul", { id: "open-tasks" });
  const more = el("button", { type: "button", id: "more-tasks", hidden: true }, "Older tasks");
  const empty = el("p", { id: "no-tasks", hidden: true }, "No open task right now.");
  let cursor = {};
  async function load() {
    more.disabled = true;
    const page = await listTasks({ state: "FUNDED", limit: pageSize(), ...cursor });
    list.append(...page.tasks.map(row));
    const before = page.next_before;
    cursor = before == null ? {} : { before, before_id: page.next_before_id };
    more.hidden = before == null;
    more.disabled = false;
    empty.hidden = list.childElementCount > 0;
  }
  more.addEventListener("click", () => load().catch((error) => more.replaceWith(el("p", { class: "bad" }, String(error.message)))));
  root.append(el("h2", {}, "Open tasks"), empty, list, more);
  await load();
}

/** The signer's own tasks, as employer and as worker, in any state (the newest of each). */
export async function showYourTasks(root, pubkey) {
  const [asEmployer, asWorker] = await Promise.all([
    listTasks({ employer: pubkey, limit: PAGE_SIZE }),
    listTasks({ worker: pubkey, limit: PAGE_SIZE }),
  ]);
  const listOf = (tasks, id) => (tasks.length ? el("ul", { id }, ...tasks.map((task) => row(task, true))) : el("p", { id }, "none"));
  root.append(
    el(
      "section",
      { id: "your-tasks" },
      el("h2", {}, "Your tasks"),
      el("h3", {}, "As employer"),
      listOf(asEmployer.tasks, "your-tasks-employer"),
      el("h3", {}, "As worker"),
      listOf(asWorker.tasks, "your-tasks-worker"),
    ),
  );
}
