// The board loads in a real browser and lists the open task the test created through the API.
import { args, baseUrl, run, screenshot } from "./harness.mjs";

await run(async (page, report) => {
  await page.goto(`${baseUrl}/`);
  const item = page.locator(`[data-task-id="${args.task_id}"] .title`);
  await item.waitFor();
  report.listed_text = await item.textContent();
  report.not_built_notice = await page.locator("#not-built").count();
  await screenshot(page, report, "board-smoke");
});
