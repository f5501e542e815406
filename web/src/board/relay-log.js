// A task's entries in the public log, read straight from the operator's relays (NIP-01 over a
// WebSocket), so the page checks the log itself rather than taking the server's word for it.
// The filter is the one docs/subscribing.md gives for a task's timeline.

const WAIT_MS = 5000;

/** The kind-``logKind`` entries of ``taskId`` that ``relayUrl`` holds (unchecked: the caller
 * verifies every one). Resolves with what arrived when the relay says it sent all (EOSE), or
 * after a few seconds; never rejects, since a relay that is down only means fewer entries. */
export function entriesFrom(relayUrl, { operator, logKind, taskId }) {
  return new Promise((resolve) => {
    const entries = [];
    const subscription = `task-${Math.random().toString(36).slice(2)}`;
    let socket;
    const finish = () => {
      clearTimeout(timer);
      try {
        socket?.close();
      } catch {
        // already closed
      }
      resolve(entries);
    };
    const timer = setTimeout(finish, WAIT_MS);
    try {
      socket = new WebSocket(relayUrl);
    } catch {
      finish();
      return;
    }
    socket.addEventListener("open", () => {
      const filter = { authors: [operator], kinds: [logKind], "#a": [`30402:${operator}:${taskId}`] };
      socket.send(JSON.stringify(["REQ", subscription, filter]));
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!Array.isArray(frame) || frame[1] !== subscription) return;
      if (frame[0] === "EVENT" && frame[2] && typeof frame[2] === "object") entries.push(frame[2]);
      if (frame[0] === "EOSE" || frame[0] === "CLOSED") finish();
    });
    socket.addEventListener("error", finish);
    socket.addEventListener("close", finish);
  });
}

/** The task's entries from every relay in ``relays``, one per event id. */
export async function taskEntries(relays, query) {
  const found = await Promise.all(relays.map((url) => entriesFrom(url, query)));
  const byId = new Map();
  for (const entry of found.flat()) if (typeof entry.id === "string") byId.set(entry.id, entry);
  return [...byId.values()];
}
