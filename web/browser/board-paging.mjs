// The board a page at a time: the first page, then older tasks with the API's cursor.
import { baseUrl, run, screenshot } from "./harness.mjs";

const listed = (page) => page.locator("#open-tasks li").evaluateAll((items) => items.map((item) => item.dataset.taskId));

await run(async (page, report) => {
  await page.goto(`${baseUrl}/?per_page=2`);
  await page.locator("#open-tasks li").first().waitFor();
  report.first_page = await listed(page);
  report.more_shown = await page.locator("#more-tasks").isVisible();
  await page.locator("#more-tasks").click();
  await page.locator("#open-tasks li").nth(2).waitFor();
  report.both_pages = await listed(page);
  report.more_after = await page.locator("#more-tasks").isVisible();
  await screenshot(page, report, "two-pages");
});
