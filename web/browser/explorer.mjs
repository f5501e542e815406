// The audit explorer in a real browser: for each visit the test names ({name, query}), open
// /audit with that query (the operator key and relays), wait until the log is checked, and
// report what the page shows: the summary, every row's verdict, and whether anything read from
// the log became markup. One screenshot per visit.
import { args, baseUrl, run, screenshot } from "./harness.mjs";

await run(async (page, report) => {
  report.visits = {};
  for (const visit of args.visits) {
    await page.goto(`${baseUrl}/audit${visit.query ?? ""}`);
    await page.locator('#explorer[data-state="done"] #summary').waitFor();
    report.visits[visit.name] = await page.evaluate(() => {
      const summary = document.getElementById("summary");
      const rows = [...document.querySelectorAll("#log tbody tr")].map((row) => ({
        kind: row.className,
        verdict: row.dataset.verdict,
        gseq: row.dataset.gseq ?? null,
        first: row.dataset.first ?? null,
        last: row.dataset.last ?? null,
        event_id: row.dataset.eventId ?? null,
        event_ids: row.dataset.eventIds ?? null,
        op: row.dataset.op ?? null,
        preimage: row.dataset.preimage ?? null,
        payout: row.dataset.payout ?? null,
        mark: row.querySelector(".mark")?.textContent ?? null,
        text: row.textContent,
      }));
      return {
        status: summary.dataset.status,
        entries: Number(summary.dataset.entries),
        problems: Number(summary.dataset.problems),
        summary: summary.textContent,
        origin: document.getElementById("defaults-origin")?.dataset.source ?? null,
        operator_input: document.getElementById("operator")?.value ?? null,
        rows,
        other_findings: [...document.querySelectorAll("#other-findings li")].map((li) => li.dataset.kind),
        relays_ok: [...document.querySelectorAll("#relay-reports li")].map((li) => li.dataset.ok),
        markup_in_result: document.querySelectorAll("#result img, #result script, #result b, #result iframe").length,
        pwned: window.__pwned === true,
        result_text: document.getElementById("result").textContent,
      };
    });
    await screenshot(page, report, visit.name);
  }
});
