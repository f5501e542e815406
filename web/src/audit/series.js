// Milestone series (taskhold/audit/series.py): across a series the indexes are 0…n-1 once each,
// every milestone declares the same count, funding mode and employer, each task id is the one
// derived from the series id and index, and under sequential funding no milestone is funded
// before the milestone before it was PAID.
import { Kind, entryLocation, finding } from "./findings.js";
import { milestoneTaskId } from "./entry.js";
import { pyRepr } from "./commitments.js";

const FUNDING_MODES = new Set(["upfront", "sequential"]);
const PAID_BY = new Set(["ReleaseCompleted", "SplitCompleted"]);

function fault(entry, detail, findings) {
  findings.add(finding(Kind.BAD_SERIES, entryLocation(entry), detail, [entry.id]));
}

function pyList(numbers) {
  return `[${numbers.join(", ")}]`;
}

export function checkSeries(byTask, findings) {
  const members = new Map();
  for (const entries of byTask.values()) {
    const first = entries[0];
    if (first !== undefined && first.op === "TaskCreated" && first.series !== null) {
      const id = first.series.series_id;
      members.set(id, [...(members.get(id) ?? []), first]);
    }
  }
  for (const [seriesId, created] of members) {
    checkMembers(seriesId, created, findings);
    if (created[0].series.funding_mode === "sequential") checkSequence(seriesId, byTask, findings);
  }
}

function checkMembers(seriesId, created, findings) {
  const firstEntry = created.reduce((a, b) => (b.gseq < a.gseq ? b : a));
  const first = firstEntry.series;
  for (const entry of created) {
    const series = entry.series;
    if (entry.task !== milestoneTaskId(seriesId, series.index)) {
      fault(entry, `milestone ${series.index}'s task id is not derived from its series`, findings);
    }
    if (series.count !== first.count || series.funding_mode !== first.funding_mode || series.employer !== first.employer) {
      fault(entry, "the milestone declares another count, funding mode or employer than its series", findings);
    }
    if (!FUNDING_MODES.has(series.funding_mode)) {
      fault(entry, `unknown funding mode ${pyRepr(series.funding_mode)}`, findings);
    }
  }
  const seen = new Map();
  for (const entry of created) seen.set(entry.series.index, (seen.get(entry.series.index) ?? 0) + 1);
  const expected = new Set();
  for (let i = 0; i < first.count; i += 1) expected.add(i);
  const byNumber = (a, b) => a - b;
  const twice = [...seen].filter(([, times]) => times > 1).map(([index]) => index).sort(byNumber);
  const missing = [...expected].filter((index) => !seen.has(index)).sort(byNumber);
  const stray = [...seen.keys()].filter((index) => !expected.has(index)).sort(byNumber);
  if (twice.length || missing.length || stray.length) {
    const detail =
      `series of ${first.count}: indexes created twice ${pyList(twice)}, missing ${pyList(missing)},` +
      ` outside the series ${pyList(stray)}`;
    fault(firstEntry, detail, findings);
  }
}

function checkSequence(seriesId, byTask, findings) {
  for (let index = 1; ; index += 1) {
    const entries = byTask.get(milestoneTaskId(seriesId, index));
    if (entries === undefined) return;
    const opened = entries.find((e) => e.op === "FundingRequested");
    const before = byTask.get(milestoneTaskId(seriesId, index - 1)) ?? [];
    const paid = before.find((e) => PAID_BY.has(e.op));
    if (opened !== undefined && (paid === undefined || paid.gseq > opened.gseq)) {
      fault(opened, `sequential funding opened milestone ${index} before milestone ${index - 1} was PAID`, findings);
    }
  }
}
