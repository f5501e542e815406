// Steps the board's browser tests share: acting through the page's forms, waiting for a task's
// state, the simulator's wallets, and recording every request the page makes.
import { baseUrl } from "./harness.mjs";

/** Records every request the page makes (url, method, headers, body) into ``into``. */
export function recordRequests(page, into) {
  page.on("request", (request) => {
    into.push({ url: request.url(), method: request.method(), headers: request.headers(), body: request.postData() ?? "" });
  });
}

/** Submits the action form ``op`` on the task page (its inputs filled from ``values``). */
export async function act(page, op, values = {}) {
  const form = page.locator(`form[data-op="${op}"]`);
  for (const [name, value] of Object.entries(values)) {
    await form.locator(`[name="${name}"]`).fill(value);
  }
  await form.locator('button[type="submit"]').click();
}

/** Waits until the task page shows ``state``. */
export async function waitForState(page, state) {
  await page.locator(`#task-state[data-state="${state}"]`).waitFor();
}

async function post(path, body) {
  const response = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

/** The simulator's wallets, standing in for the employer's and the worker's own. */
export const sim = {
  pay: (paymentRequest) => post("/v1/sim/pay", { payment_request: paymentRequest, wallet: "employer" }),
  invoice: (amountMsat) => post("/v1/sim/invoice", { amount_msat: amountMsat, wallet: "worker", memo: "board test" }),
  async balances() {
    return (await (await fetch(`${baseUrl}/v1/sim/wallets`)).json()).balances_msat;
  },
};

export async function apiTask(taskId) {
  return (await fetch(`${baseUrl}/v1/tasks/${taskId}`)).json();
}
