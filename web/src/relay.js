// Reading the operator's log from relays over plain NIP-01 websockets, as
// taskhold/audit/fetch.py does: entries are asked for by their indexed sequence number (#o) in
// batches, never paged by created_at (a relay caps an answer at about 500 events and one second
// can hold more); a batch whose answer hits the cap is split and asked again. How far to ask
// comes from the checkpoint and the highest o among the newest entries; past that the scan goes
// on until a batch comes back empty. Each relay is read on its own; the union keeps every
// distinct event (by its whole body, so a relay serving an altered copy cannot hide the real
// one). A relay that is down, slow or refuses is reported, never fatal. Nothing read here is
// trusted: the checks in audit/ decide.
import { CHECKPOINT_D } from "./audit/checks.js";
import { DEFAULT_KINDS, KEY_ROTATED } from "./audit/entry.js";
import { canonicalJson, isHex64, Verdict, verifyVerdict } from "./audit/nip01.js";

export const FETCH_SETTINGS = Object.freeze({
  batchSize: 250,
  relayCap: 500,
  timeoutMs: 10000,
  maxEmptyBatches: 8,
});

class RelayRefused extends Error {}

/** One websocket to one relay; ``query`` sends a REQ and collects its events up to EOSE. A query
 * that times out rejects with the events that did arrive as the error's ``events``. */
export class Session {
  constructor(socket, report, timeoutMs) {
    this.socket = socket;
    this.report = report;
    this.timeoutMs = timeoutMs;
    this.next = 0;
    this.waiting = new Map();
    socket.addEventListener("message", (message) => this.receive(message.data));
    socket.addEventListener("close", () => this.failAll(new Error("the relay closed the connection")));
  }

  static open(url, report, timeoutMs) {
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(url);
      } catch (error) {
        reject(error);
        return;
      }
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error(`timed out after ${timeoutMs / 1000} s`));
      }, timeoutMs);
      socket.addEventListener("open", () => {
        clearTimeout(timer);
        resolve(new Session(socket, report, timeoutMs));
      });
      socket.addEventListener("error", () => {
        clearTimeout(timer);
        reject(new Error("could not connect"));
      });
    });
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return; // not JSON: nothing a relay says outside the protocol counts
    }
    if (!Array.isArray(message) || message.length < 2) return;
    const [verb, sub] = message;
    if (verb === "NOTICE") {
      this.report.notices.push(String(sub));
      return;
    }
    const pending = this.waiting.get(sub);
    if (pending === undefined) return;
    if (verb === "EVENT" && message.length >= 3) {
      const event = message[2];
      if (typeof event === "object" && event !== null && !Array.isArray(event)) {
        pending.events.push(event);
      }
    } else if (verb === "EOSE") {
      this.settle(sub, null);
    } else if (verb === "CLOSED") {
      this.settle(sub, new RelayRefused(message.length > 2 ? String(message[2]) : "closed"));
    }
  }

  settle(sub, error) {
    const pending = this.waiting.get(sub);
    this.waiting.delete(sub);
    clearTimeout(pending.timer);
    if (error) pending.reject(Object.assign(error, { events: pending.events }));
    else {
      this.socket.send(JSON.stringify(["CLOSE", sub]));
      pending.resolve(pending.events);
    }
  }

  failAll(error) {
    for (const sub of [...this.waiting.keys()]) this.settle(sub, error);
  }

  query(filter) {
    const sub = `explorer-${this.next++}`;
    this.report.requests += 1;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.settle(sub, new Error(`timed out after ${this.timeoutMs / 1000} s`)),
        this.timeoutMs,
      );
      this.waiting.set(sub, { events: [], resolve, reject, timer });
      this.socket.send(JSON.stringify(["REQ", sub, filter]));
    });
  }

  close() {
    this.socket.close();
  }
}

/** The highest number in a ``tagName`` tag among events that verify as one of ``keys``: a hint
 * of how far to scan, never a check. */
function highest(events, keys, tagName) {
  let found = null;
  for (const event of events) {
    if (verifyVerdict(event) !== Verdict.OK || !keys.includes(event.pubkey)) continue;
    for (const tag of event.tags) {
      if (tag[0] === tagName && tag.length >= 2 && /^[0-9]+$/.test(tag[1])) {
        found = Math.max(found ?? 0, Number(tag[1]));
      }
    }
  }
  return found;
}

/** New keys named by verified KeyRotated entries signed by one of ``keys``. */
function rotatedTo(events, keys) {
  const found = [];
  for (const event of events) {
    if (!keys.includes(event.pubkey) || verifyVerdict(event) !== Verdict.OK) continue;
    const tags = Object.fromEntries(event.tags.filter((t) => t.length >= 2).map((t) => [t[0], t[1]]));
    const newKey = tags.new_key ?? "";
    if (tags.op === KEY_ROTATED && isHex64(newKey) && !keys.includes(newKey) && !found.includes(newKey)) {
      found.push(newKey);
    }
  }
  return found;
}

class RelayReader {
  constructor(session, operator, kinds, settings) {
    this.session = session;
    this.keys = [operator];
    this.kinds = kinds;
    this.settings = settings;
    this.entries = [];
    this.checkpoints = [];
    this.deletions = [];
  }

  filter(kind, extra = {}) {
    return { authors: [...this.keys], kinds: [kind], ...extra };
  }

  /** Entries with o in [first, end), splitting a range whose answer hit the cap. */
  async scan(first, end) {
    const cap = this.settings.relayCap;
    const values = [];
    for (let gseq = first; gseq < end; gseq += 1) values.push(String(gseq));
    const events = await this.session.query(this.filter(this.kinds.entry, { "#o": values, limit: cap }));
    if (events.length < cap || end - first === 1) return events;
    const middle = Math.floor((first + end) / 2);
    return [...(await this.scan(first, middle)), ...(await this.scan(middle, end))];
  }

  async read(report) {
    for (;;) {
      this.entries = [];
      this.checkpoints = [];
      this.deletions = [];
      await this.readOnce(report);
      const handedTo = rotatedTo(this.entries, this.keys);
      if (!handedTo.length) return;
      this.keys.push(...handedTo);
    }
  }

  async readOnce(report) {
    const { relayCap: cap, batchSize: size, maxEmptyBatches } = this.settings;
    const query = (filter) => this.session.query(filter);
    this.checkpoints = await query(this.filter(this.kinds.checkpoint, { "#d": [CHECKPOINT_D] }));
    const newest = await query(this.filter(this.kinds.entry, { limit: cap }));
    this.deletions = await query(this.filter(5, { limit: cap }));
    this.entries.push(...newest);
    const hints = [highest(newest, this.keys, "o"), highest(this.checkpoints, this.keys, "gseq")];
    let head = Math.max(-1, ...hints.filter((hint) => hint !== null));
    let first = 0;
    let emptyRun = 0;
    for (;;) {
      const batch = await this.scan(first, first + size);
      this.entries.push(...batch);
      const found = highest(batch, this.keys, "o");
      if (found === null) emptyRun += 1;
      else [head, emptyRun] = [Math.max(head, found), 0];
      first += size;
      if (!batch.length && first > head) break;
      if (emptyRun >= maxEmptyBatches) {
        report.notices.push(`gave up at gseq ${first} after ${emptyRun} empty batches (head ${head})`);
        break;
      }
    }
  }
}

async function readRelay(url, operator, kinds, settings) {
  const report = { url, ok: false, error: null, entries: 0, requests: 0, notices: [] };
  let reader = null;
  let session = null;
  try {
    session = await Session.open(url, report, settings.timeoutMs);
    reader = new RelayReader(session, operator, kinds, settings);
    await reader.read(report);
    report.ok = true;
  } catch (error) {
    report.error = error instanceof RelayRefused ? `relay closed the subscription: ${error.message}` : String(error.message ?? error);
  } finally {
    if (session !== null) session.close();
  }
  if (reader !== null) report.entries = new Set(reader.entries.map((e) => e.id)).size;
  return { report, reader };
}

/** Every distinct event once: the same id with another body is kept too (it fails its id check
 * instead of shadowing the genuine copy). */
function union(groups) {
  const seen = new Map();
  for (const events of groups) {
    for (const event of events) {
      const key = canonicalJson(event);
      if (!seen.has(key)) seen.set(key, event);
    }
  }
  return [...seen.values()];
}

/** The operator's log entries, checkpoints and deletion requests from every relay. */
export async function fetchLog(relays, operator, { kinds = DEFAULT_KINDS, settings = FETCH_SETTINGS } = {}) {
  const results = await Promise.all(relays.map((url) => readRelay(url, operator, kinds, settings)));
  const readers = results.map((r) => r.reader).filter((reader) => reader !== null);
  return {
    entries: union(readers.map((r) => r.entries)),
    checkpoints: union(readers.map((r) => r.checkpoints)),
    deletions: union(readers.map((r) => r.deletions)),
    relays: results.map((r) => r.report),
    readable: results.some((r) => r.report.ok),
  };
}
