// What every browser test script shares: Debian's Chromium through playwright-core, a page that
// records its console errors and uncaught exceptions, screenshots into the artifacts directory,
// a NIP-07 test signer, and one JSON line of results on stdout for pytest to check.
//
// Environment (set by tests/support/browser.py): TASKHOLD_CHROMIUM (the browser binary),
// TASKHOLD_BASE_URL (a real `taskhold serve`), TASKHOLD_SCREENSHOTS (a directory),
// TASKHOLD_BROWSER_ARGS (a JSON object of the test's own inputs).
import { chromium } from "playwright-core";
import { finalizeEvent, getPublicKey } from "nostr-tools/pure";
import { hexToBytes } from "@noble/hashes/utils.js";
import path from "node:path";
import { mkdirSync } from "node:fs";

export const baseUrl = process.env.TASKHOLD_BASE_URL;
export const args = JSON.parse(process.env.TASKHOLD_BROWSER_ARGS ?? "{}");

/** Runs ``body(page, report)`` in a fresh browser and prints ``report`` as one JSON line. */
export async function run(body) {
  const browser = await chromium.launch({
    executablePath: process.env.TASKHOLD_CHROMIUM,
    chromiumSandbox: false, // tests run as root in CI, where Chromium's sandbox cannot start
  });
  const report = { console_errors: [], page_errors: [], screenshots: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(Number(process.env.TASKHOLD_BROWSER_TIMEOUT_MS ?? 30000));
    page.on("console", (message) => {
      if (message.type() === "error") report.console_errors.push(message.text());
    });
    page.on("pageerror", (error) => report.page_errors.push(String(error)));
    try {
      await body(page, report, context);
    } catch (error) {
      report.failure = String(error && error.stack ? error.stack : error);
      await screenshot(page, report, "failure").catch(() => {});
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** Saves a full-page PNG under TASKHOLD_SCREENSHOTS and lists it in the report. */
export async function screenshot(page, report, name) {
  const dir = process.env.TASKHOLD_SCREENSHOTS;
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  report.screenshots.push(file);
  return file;
}

/**
 * A NIP-07 signer for tests: ``window.nostr`` in the page, signing in this Node process with a
 * secret key the page never sees (as a browser extension keeps it). ``signer.use(secretHex)``
 * switches whose key it is, so one page can act as the employer and then as the worker.
 */
export async function installTestSigner(context) {
  let secret = null;
  const signer = {
    use(secretHex) {
      secret = hexToBytes(secretHex);
    },
    signed: [],
  };
  await context.exposeBinding("__taskholdTestSignerPubkey", () => {
    if (secret === null) throw new Error("the test signer has no key");
    return getPublicKey(secret);
  });
  await context.exposeBinding("__taskholdTestSignerSign", (_source, template) => {
    if (secret === null) throw new Error("the test signer has no key");
    const event = finalizeEvent(template, secret);
    signer.signed.push({ id: event.id, kind: event.kind, tags: event.tags });
    return event;
  });
  await context.addInitScript(() => {
    window.nostr = {
      getPublicKey: () => window.__taskholdTestSignerPubkey(),
      signEvent: (template) => window.__taskholdTestSignerSign(template),
    };
  });
  return signer;
}
