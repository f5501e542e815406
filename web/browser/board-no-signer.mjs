// A browser without a NIP-07 signer: the board and the task's page show the `taskhold task`
// command for each step, and no form at all (nothing on the page could ask for a key).
import { args, baseUrl, run, screenshot } from "./harness.mjs";

await run(async (page, report) => {
  await page.goto(`${baseUrl}/`);
  await page.locator("#post-task pre").waitFor();
  report.create_command = await page.locator("#post-task pre").textContent();
  report.board_forms = await page.locator("form, input, textarea").count();
  await screenshot(page, report, "board-without-signer");

  await page.goto(`${baseUrl}/tasks/${args.task_id}`);
  await page.locator("#no-signer").waitFor();
  report.steps = await page.locator(".cli-step").evaluateAll((steps) =>
    steps.map((step) => ({ op: step.dataset.op, command: step.querySelector("pre")?.textContent ?? null })),
  );
  report.task_forms = await page.locator("form, input, textarea").count();
  await screenshot(page, report, "task-without-signer");
});
