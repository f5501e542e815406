// NIP-01 events checked the way taskhold/audit/nip01.py checks them: the shape read strictly,
// then the id (sha256 of the serialised event, computed here, never taken from the event), then
// the BIP-340 signature over it, by nostr-tools. The verdicts and their order are the Python
// auditor's, so both report a forged entry as the same finding.
import { getEventHash, verifyEvent } from "nostr-tools/pure";

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

export const Verdict = Object.freeze({
  OK: "ok",
  MALFORMED: "malformed",
  BAD_ID: "bad_id",
  BAD_SIGNATURE: "bad_signature",
});

export function isHex64(value) {
  return typeof value === "string" && HEX64.test(value);
}

export function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonNegativeInt(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

/** Why ``event`` is not a well-formed NIP-01 event, or null when it is. */
export function shapeError(event) {
  if (!isObject(event)) return "not a JSON object";
  for (const name of ["id", "pubkey"]) {
    if (!isHex64(event[name])) return `${name} is not 64 lowercase hex characters`;
  }
  if (typeof event.sig !== "string" || !HEX128.test(event.sig)) {
    return "sig is not 128 lowercase hex characters";
  }
  if (!isNonNegativeInt(event.created_at)) return "created_at is not a non-negative integer";
  if (!isNonNegativeInt(event.kind) || event.kind > 0xffff) {
    return "kind is not an integer from 0 to 65535";
  }
  if (typeof event.content !== "string") return "content is not a string";
  if (!Array.isArray(event.tags)) return "tags is not a list";
  for (const tag of event.tags) {
    if (!Array.isArray(tag) || tag.length === 0) return "a tag is not a non-empty list";
    if (!tag.every((value) => typeof value === "string")) {
      return "a tag holds something other than strings";
    }
  }
  return null;
}

/** Shape, then the id, then the signature: one of ``Verdict``. */
export function verifyVerdict(event) {
  if (shapeError(event) !== null) return Verdict.MALFORMED;
  // A copy of the fields the id covers: nothing else a relay sent takes part in the check.
  const plain = {
    id: event.id,
    pubkey: event.pubkey,
    created_at: event.created_at,
    kind: event.kind,
    tags: event.tags,
    content: event.content,
    sig: event.sig,
  };
  if (getEventHash(plain) !== event.id) return Verdict.BAD_ID;
  // The id is now the hash of what the event says, so the signature's validity depends on
  // (id, pubkey, sig) alone: the copies several relays send are verified once.
  const key = `${event.id}${event.pubkey}${event.sig}`;
  let valid = signatures.get(key);
  if (valid === undefined) {
    valid = verifyEvent(plain);
    if (signatures.size >= 65536) signatures.clear();
    signatures.set(key, valid);
  }
  return valid ? Verdict.OK : Verdict.BAD_SIGNATURE;
}

const signatures = new Map();

/** Compact JSON with every object's keys sorted (``json.dumps(..., sort_keys=True)``). */
export function canonicalJson(value) {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isObject(value)) return value;
  const sorted = {};
  for (const key of Object.keys(value).sort(byCodePoint)) sorted[key] = sortKeys(value[key]);
  return sorted;
}

/** Python sorts strings by code point; JavaScript's default sort compares UTF-16 units. */
function byCodePoint(a, b) {
  const left = Array.from(a);
  const right = Array.from(b);
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    const diff = left[i].codePointAt(0) - right[i].codePointAt(0);
    if (diff !== 0) return diff;
  }
  return left.length - right.length;
}
