// The public taskhold API, as the pages use it: same origin, JSON, problem+json on refusal.
export async function getJson(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(`${body.title ?? response.status}: ${body.detail ?? ""}`);
  }
  return body;
}

export function listTasks(query = {}) {
  return getJson(`/v1/tasks?${new URLSearchParams(query)}`);
}
