// The two facts of a BOLT11 invoice a payee signs in clear with it: its payment hash and its
// amount. taskhold refuses a payout invoice without them (the public log proves the payout
// against the hash), so the page reads them here, from the invoice the worker pasted, instead
// of trusting anyone to say them.
import { bech32 } from "@scure/base";

const MSAT_PER_BTC = 100_000_000_000n;
const MULTIPLIER = { m: 1_000n, u: 1_000_000n, n: 1_000_000_000n, p: 1_000_000_000_000n };
const SIGNATURE_WORDS = 104; // 65 bytes
const TIMESTAMP_WORDS = 7;
const PAYMENT_HASH_TAG = 1; // "p"

/** ``{paymentHash, amountMsat}`` of ``invoice``; throws an Error saying what is wrong. */
export function payoutTerms(invoice) {
  const text = invoice.trim().toLowerCase().replace(/^lightning:/, "");
  let decoded;
  try {
    decoded = bech32.decode(text, false);
  } catch {
    throw new Error("this is not a Lightning invoice (BOLT11)");
  }
  return { paymentHash: paymentHash(decoded.words), amountMsat: amountMsat(decoded.prefix) };
}

function amountMsat(prefix) {
  const match = /^ln(?:bcrt|bc|tbs|tb|sb)(\d+)?([munp])?$/.exec(prefix);
  if (match === null) throw new Error("this is not a Lightning invoice (BOLT11)");
  if (match[1] === undefined) throw new Error("the invoice names no amount: make one for the payout");
  const scaled = BigInt(match[1]) * MSAT_PER_BTC;
  const divisor = match[2] === undefined ? 1n : MULTIPLIER[match[2]];
  if (scaled % divisor !== 0n) throw new Error("the invoice's amount is not whole millisatoshis");
  return Number(scaled / divisor);
}

function paymentHash(words) {
  let at = TIMESTAMP_WORDS;
  const end = words.length - SIGNATURE_WORDS;
  while (at + 3 <= end) {
    const tag = words[at];
    const length = words[at + 1] * 32 + words[at + 2];
    const data = words.slice(at + 3, at + 3 + length);
    if (tag === PAYMENT_HASH_TAG && length === 52) {
      return hexOfWords(data).slice(0, 64);
    }
    at += 3 + length;
  }
  throw new Error("the invoice has no payment hash");
}

/** 5-bit words as hex, 4 bits at a time (the tail that makes no whole byte is cut by the caller). */
function hexOfWords(words) {
  let bits = 0n;
  for (const word of words) bits = (bits << 5n) | BigInt(word);
  const nibbles = Math.floor((words.length * 5) / 4);
  bits >>= BigInt(words.length * 5 - nibbles * 4);
  return bits.toString(16).padStart(nibbles, "0");
}
