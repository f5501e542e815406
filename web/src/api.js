// The public taskhold API, as the pages use it: same origin, JSON, problem+json on refusal.

/** A refusal from the server (problem+json): its status, stable code, title and detail. */
export class ApiRefusal extends Error {
  constructor(status, problem) {
    const title = problem.title ?? `HTTP ${status}`;
    super(problem.detail ? `${title}: ${problem.detail}` : title);
    this.status = status;
    this.code = problem.code ?? `http_${status}`;
    this.title = title;
    this.detail = problem.detail ?? "";
  }
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiRefusal(response.status, body && typeof body === "object" ? body : {});
  }
  return body;
}

export async function getJson(path) {
  return answer(await fetch(path, { headers: { accept: "application/json" } }));
}

export function listTasks(query = {}) {
  const given = Object.fromEntries(Object.entries(query).filter(([, value]) => value != null));
  return getJson(`/v1/tasks?${new URLSearchParams(given)}`);
}

const taskPath = (taskId) => `/v1/tasks/${encodeURIComponent(taskId)}`;

export const getTask = (taskId) => getJson(taskPath(taskId));
export const getTransitions = (taskId) => getJson(`${taskPath(taskId)}/transitions`);
export const getReputation = (pubkey) => getJson(`/v1/reputation/${encodeURIComponent(pubkey)}`);
export const getInfo = () => getJson("/v1/info");

/** Where a write for ``op`` goes: the create route, or the task's route for that op. */
export function writePath(op, taskId) {
  if (taskId == null) return "/v1/tasks";
  const path = { fund: "funding", swap: "swaps" }[op] ?? op;
  return `${taskPath(taskId)}/${path}`;
}

/** POSTs a signed request event with the idempotency key it signed in its key tag. */
export async function postSigned(path, event, idempotencyKey) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": idempotencyKey },
    body: JSON.stringify({ request: event }),
  });
  return answer(response);
}
