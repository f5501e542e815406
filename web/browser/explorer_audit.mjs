// The explorer's checks (web/src/audit) run in Node on a log given on stdin, for the tests that
// hold them to the Python auditor: {events, operator, checkpoints?, deletions?} in, one JSON
// line out with the findings, the summary, and which entries' preimage and payout proofs held.
import { auditLog } from "../src/audit/checks.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const result = auditLog(input.events, input.operator, {
  checkpoints: input.checkpoints ?? [],
  deletions: input.deletions ?? [],
});
process.stdout.write(
  `${JSON.stringify({
    findings: result.findings,
    summary: result.summary,
    keys: result.keys,
    preimages_ok: [...result.preimagesOk].sort(),
    payouts_proven: [...result.payoutsProven].sort(),
  })}\n`,
);
