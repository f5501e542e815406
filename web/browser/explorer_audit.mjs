// The explorer's checks (web/src/audit) run in Node on logs given on stdin, for the tests that
// hold them to the Python auditor. In: a JSON list of {events, operator, checkpoints?,
// deletions?}. Out: one JSON line, a list with, for each log, the findings, the summary, and
// which entries' preimage and payout proofs held.
import { auditLog } from "../src/audit/checks.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const logs = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = logs.map((log) => {
  const result = auditLog(log.events, log.operator, {
    checkpoints: log.checkpoints ?? [],
    deletions: log.deletions ?? [],
  });
  return {
    findings: result.findings,
    summary: result.summary,
    keys: result.keys,
    preimages_ok: [...result.preimagesOk].sort(),
    payouts_proven: [...result.payoutsProven].sort(),
  };
});
process.stdout.write(`${JSON.stringify(results)}\n`);
