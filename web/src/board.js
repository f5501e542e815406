// The task board's router: the address says which page this is (served by taskhold/web/pages.py
// at /, /tasks/{id} and /reputation/{pubkey}). Everything shown is read from the public API and
// rendered as text: task fields are written by strangers, so nothing here ever becomes markup.
import { getInfo } from "./api.js";
import { el } from "./dom.js";
import { createSection } from "./board/create.js";
import { showOpenTasks, showYourTasks } from "./board/list.js";
import { showReputation } from "./board/reputation.js";
import { hasSigner, signerPubkey } from "./board/signer.js";
import { showTask } from "./board/task.js";

async function showBoard(root) {
  const { kinds } = await getInfo();
  root.replaceChildren();
  await showOpenTasks(root);
  if (hasSigner()) {
    // a signer that gives no key only costs the reader their own list
    const pubkey = await signerPubkey().catch(() => null);
    if (pubkey !== null) await showYourTasks(root, pubkey);
  }
  root.append(createSection(kinds));
}

async function route(root) {
  const [, page, key] = location.pathname.split("/");
  if (page === "tasks" && key) return showTask(root, decodeURIComponent(key));
  if (page === "reputation" && key) return showReputation(root, decodeURIComponent(key));
  return showBoard(root);
}

const root = document.getElementById("board");
route(root).catch((error) => {
  root.replaceChildren(el("p", { class: "bad", role: "alert", id: "load-error" }, `This page could not load: ${error.message}`));
});
