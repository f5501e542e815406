// A whole task through the web board with a NIP-07 test signer: the employer posts and funds
// it, a worker claims it and sends the proof with a payout invoice, the employer approves, and
// the page shows PAID with every timeline entry checked. Every request the page makes is
// recorded, for the test to check that no secret ever left the signer.
import { generateSecretKey, getPublicKey } from "nostr-tools/pure";
import { bytesToHex } from "@noble/hashes/utils.js";
import { baseUrl, installTestSigner, run, screenshot } from "./harness.mjs";
import { act, apiTask, recordRequests, sim, waitForState } from "./board-flow.mjs";

const employer = bytesToHex(generateSecretKey());
const worker = bytesToHex(generateSecretKey());
const REFUSED_LOAD = /Failed to load resource: the server responded with a status of 422/;

await run(async (page, report, context) => {
  const signer = await installTestSigner(context);
  const requests = [];
  recordRequests(page, requests);
  report.employer_pubkey = getPublicKey(Uint8Array.from(Buffer.from(employer, "hex")));
  report.worker_pubkey = getPublicKey(Uint8Array.from(Buffer.from(worker, "hex")));

  // the employer posts the task on the board
  signer.use(employer);
  await page.goto(`${baseUrl}/`);
  const create = page.locator("#create-task");
  await create.locator('[name="title"]').fill("Proofread the board's help text");
  await create.locator('[name="description"]').fill("Read docs/web.md and fix what is unclear.");
  await create.locator('[name="amount_sat"]').fill("2100");
  await create.locator('[name="deadline_hours"]').fill("48");
  await create.locator('[name="url_fields"]').fill("url");
  await screenshot(page, report, "01-create-form");
  await create.locator('button[type="submit"]').click();
  await page.waitForURL(/\/tasks\//);
  const taskId = decodeURIComponent(new URL(page.url()).pathname.split("/")[2]);
  report.task_id = taskId;
  await waitForState(page, "DRAFT");
  report.employer_actions = await page.locator("form.action").evaluateAll((forms) => forms.map((form) => form.dataset.op));
  await screenshot(page, report, "02-created");

  // funds it: the page shows the hold invoice, the employer's wallet pays it
  await act(page, "fund");
  await waitForState(page, "PENDING_FUNDING");
  const invoice = (await page.locator("#funding-invoice").textContent()).trim();
  report.funding_link = await page.locator("#funding-link").getAttribute("href");
  report.funding_invoice = invoice;
  await screenshot(page, report, "03-awaiting-funding");
  await sim.pay(invoice);
  await waitForState(page, "FUNDED"); // the page follows the task by itself
  await screenshot(page, report, "04-funded");

  // the worker finds it on the board and claims it
  signer.use(worker);
  await page.goto(`${baseUrl}/`);
  await page.locator(`[data-task-id="${taskId}"] a`).click();
  await page.waitForURL(/\/tasks\//);
  await waitForState(page, "FUNDED");
  report.worker_actions_funded = await page.locator("form.action").evaluateAll((forms) => forms.map((form) => form.dataset.op));
  await act(page, "claim");
  await waitForState(page, "CLAIMED");
  await screenshot(page, report, "05-claimed");

  // a payout invoice for the wrong amount is refused by taskhold, and the page says why
  const payoutMsat = (await apiTask(taskId)).payout_msat;
  const wrong = await sim.invoice(payoutMsat + 1000);
  await act(page, "proof", { "proof.url": "https://example.org/pr/7", payout_invoice: wrong.payment_request });
  const refusal = page.locator('form[data-op="proof"] .refusal');
  await refusal.waitFor();
  report.refusal_text = await refusal.textContent();
  await screenshot(page, report, "06-proof-refused");

  // the right invoice goes through
  report.worker_balance_before = (await sim.balances()).worker;
  const payout = await sim.invoice(payoutMsat);
  await act(page, "proof", { "proof.url": "https://example.org/pr/7", payout_invoice: payout.payment_request });
  await waitForState(page, "SUBMITTED");
  await screenshot(page, report, "07-submitted");

  // the employer approves; taskhold pays the worker and settles the hold
  signer.use(employer);
  await page.reload();
  await waitForState(page, "SUBMITTED");
  report.employer_actions_submitted = await page.locator("form.action").evaluateAll((forms) => forms.map((form) => form.dataset.op));
  await act(page, "approve");
  await waitForState(page, "PAID");
  // the marks fill in as the relays answer; none is left waiting once the log is published
  await page.waitForFunction(() => {
    const items = [...document.querySelectorAll("#timeline li")];
    return items.length > 0 && items.every((item) => item.dataset.verified !== "pending");
  });
  await screenshot(page, report, "08-paid");
  report.worker_balance_after = (await sim.balances()).worker;
  report.timeline = await page.locator("#timeline li").evaluateAll((items) => items.map((item) => ({ verified: item.dataset.verified, text: item.textContent })));
  report.audit_link = await page.locator('#timeline-section a[href="/audit"]').count();
  report.proof_shown = await page.locator(".proof dd").allTextContents();

  // the worker's reputation page, linked from the task
  await page.locator(`#board a[href="/reputation/${report.worker_pubkey}"]`).first().click();
  await page.locator("#score").waitFor();
  report.reputation_tasks = await page.locator(`#board a[href="/tasks/${taskId}"]`).count();
  await screenshot(page, report, "09-worker-reputation");

  // the employer finds it among their own tasks on the board
  signer.use(employer);
  await page.goto(`${baseUrl}/`);
  await page.locator("#your-tasks-employer").waitFor();
  report.your_tasks = await page.locator("#your-tasks-employer li").allTextContents();

  // a key-asking field anywhere would be a way to lose it
  report.key_inputs = await page.locator('input[type="password"], [name*="nsec"], [name*="secret"]').count();
  report.signed = signer.signed.map((event) => event.tags.find((tag) => tag[0] === "op")[1]);
  report.requests = requests.length;
  report.posts = requests.filter((request) => request.method === "POST").map((request) => new URL(request.url).pathname);
  report.secret_seen = requests.filter((request) => {
    const text = `${request.url} ${JSON.stringify(request.headers)} ${request.body}`.toLowerCase();
    return text.includes(employer) || text.includes(worker) || text.includes("nsec1");
  }).length;
  // the one refusal the test provoked is the browser's one expected console error
  report.expected_console = report.console_errors.filter((line) => REFUSED_LOAD.test(line)).length;
  report.console_errors = report.console_errors.filter((line) => !REFUSED_LOAD.test(line));
});
