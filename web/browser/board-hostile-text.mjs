// A stranger's task title and description written as markup are shown as text on the board and
// on the task's page: no element is made of them and nothing in them runs.
import { args, baseUrl, run, screenshot } from "./harness.mjs";

await run(async (page, report, context) => {
  const dialogs = [];
  page.on("dialog", async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  await context.addInitScript(() => {
    window.__taskholdPwned = 0;
  });

  await page.goto(`${baseUrl}/`);
  const listed = page.locator(`[data-task-id="${args.task_id}"] .title`);
  await listed.waitFor();
  report.listed_text = await listed.textContent();
  report.board_injected = await page.locator("#board img, #board script, #board iframe").count();
  await screenshot(page, report, "board");

  await page.goto(`${baseUrl}/tasks/${args.task_id}`);
  await page.locator("#task-title").waitFor();
  report.title_text = await page.locator("#task-title").textContent();
  report.description_text = await page.locator("#task-description").textContent();
  report.task_injected = await page.locator("#board img, #board script, #board iframe").count();
  report.document_title = await page.title();
  await screenshot(page, report, "task");

  report.pwned = await page.evaluate(() => window.__taskholdPwned);
  report.dialogs = dialogs;
});
