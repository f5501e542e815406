// The task board: open tasks from the public API, rendered as text (task fields are written by
// strangers, so nothing here ever becomes markup).
import { listTasks } from "./api.js";
import { el, formatMsat } from "./dom.js";

async function showOpenTasks(root) {
  const { tasks } = await listTasks({ state: "FUNDED" });
  const list = el("ul", { id: "open-tasks" });
  for (const task of tasks) {
    list.append(el("li", { "data-task-id": task.task_id }, `${task.title ?? task.task_id} — ${formatMsat(task.amount_msat)}`));
  }
  root.replaceChildren(el("h2", {}, "Open tasks"), list);
}

showOpenTasks(document.getElementById("board"));
