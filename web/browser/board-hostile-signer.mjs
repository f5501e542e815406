// A NIP-07 signer that misbehaves (a hostile or broken extension): with ``mode`` "other_key" it
// signs with another key than the one it told the page, with "tampered" it signs a request
// other than the one it was given. Either way the page sends nothing and says so, at once.
import { args, baseUrl, installTestSigner, run, screenshot } from "./harness.mjs";
import { recordRequests } from "./board-flow.mjs";

await run(async (page, report, context) => {
  const signer = await installTestSigner(context);
  signer.use(args.signing_secret);
  if (args.mode === "other_key") {
    await context.addInitScript((claimed) => {
      window.nostr.getPublicKey = async () => claimed;
    }, args.claimed_pubkey);
  } else {
    await context.addInitScript(() => {
      const sign = window.nostr.signEvent;
      window.nostr.signEvent = (template) => sign({ ...template, tags: [...template.tags, ["p", "0".repeat(64)]] });
    });
  }
  const requests = [];
  recordRequests(page, requests);

  await page.goto(`${baseUrl}/tasks/${args.task_id}`);
  await page.locator('#task-state[data-state="FUNDED"]').waitFor();
  report.signed_in = await page.locator("#signed-in").textContent();
  await page.locator('form[data-op="claim"] button[type="submit"]').click();
  const refusal = page.locator('form[data-op="claim"] .refusal');
  await refusal.waitFor();
  report.refusal_text = await refusal.textContent();
  report.button_enabled = await page.locator('form[data-op="claim"] button[type="submit"]').isEnabled();
  await screenshot(page, report, "refused-signer");
  report.signed = signer.signed.length;
  report.posts = requests.filter((request) => request.method === "POST").map((request) => request.url);
});
