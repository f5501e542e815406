// A task that takes applications, through the board: a worker applies with a note, the
// employer assigns them from the task's page, and the worker gives the task back.
import { args, baseUrl, installTestSigner, run, screenshot } from "./harness.mjs";
import { act, waitForState } from "./board-flow.mjs";

await run(async (page, report, context) => {
  const signer = await installTestSigner(context);
  signer.use(args.worker_secret);
  await page.goto(`${baseUrl}/tasks/${args.task_id}`);
  await waitForState(page, "FUNDED");
  report.worker_actions = await page.locator("form.action").evaluateAll((forms) => forms.map((form) => form.dataset.op));
  await act(page, "apply", { note: "I wrote the original; an hour's work." });
  await page.locator('form[data-op="apply"]').waitFor({ state: "detached" }); // applied once
  await screenshot(page, report, "applied");

  signer.use(args.employer_secret);
  await page.reload();
  await page.locator('form[data-op="assign"]').waitFor();
  report.applicant_choices = await page.locator('form[data-op="assign"] option').evaluateAll((options) => options.map((option) => option.value));
  await screenshot(page, report, "to-assign");
  await act(page, "assign");
  await waitForState(page, "CLAIMED");
  await screenshot(page, report, "assigned");

  signer.use(args.worker_secret);
  await page.reload();
  await waitForState(page, "CLAIMED");
  report.worker_actions_claimed = await page.locator("form.action").evaluateAll((forms) => forms.map((form) => form.dataset.op));
  await act(page, "unclaim");
  await waitForState(page, "FUNDED");
  report.worker_actions_after = await page.locator("form.action").evaluateAll((forms) => forms.map((form) => form.dataset.op));
  await screenshot(page, report, "given-back");
});
