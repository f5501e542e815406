// A NIP-07 signer that signs with another key than the one it told the page (a hostile or
// broken extension): the page refuses to send the event and says so, at once.
import { args, baseUrl, installTestSigner, run, screenshot } from "./harness.mjs";
import { recordRequests } from "./board-flow.mjs";

await run(async (page, report, context) => {
  const signer = await installTestSigner(context);
  signer.use(args.signing_secret);
  // the extension claims one key and signs with another
  await context.addInitScript((claimed) => {
    window.nostr.getPublicKey = async () => claimed;
  }, args.claimed_pubkey);
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
