// A task's entries in the public log, read straight from the operator's relays (NIP-01 over a
// WebSocket), so the page checks the log itself rather than taking the server's word for it.
// The filter is the one docs/subscribing.md gives for a task's timeline.

import { Session } from "../relay.js";

const WAIT_MS = 5000;

/** The kind-``logKind`` entries of ``taskId`` that ``relayUrl`` holds (unchecked: the caller
 * verifies every one). Resolves with what arrived when the relay says it sent all (EOSE), or
 * after a few seconds; never rejects, since a relay that is down only means fewer entries. */
export async function entriesFrom(relayUrl, { operator, logKind, taskId }) {
  const filter = { authors: [operator], kinds: [logKind], "#a": [`30402:${operator}:${taskId}`] };
  let session = null;
  try {
    session = await Session.open(relayUrl, { notices: [], requests: 0 }, WAIT_MS);
    return await session.query(filter);
  } catch (error) {
    return error?.events ?? []; // a timeout keeps what arrived; a refusal or no relay, nothing
  } finally {
    session?.close();
  }
}

/** The task's entries from every relay in ``relays``, one per event id. */
export async function taskEntries(relays, query) {
  const found = await Promise.all(relays.map((url) => entriesFrom(url, query)));
  const byId = new Map();
  for (const entry of found.flat()) if (typeof entry.id === "string") byId.set(entry.id, entry);
  return [...byId.values()];
}
