// Signing requests with the user's own NIP-07 signer (a browser extension holding their key):
// the page builds the exact event taskhold expects, the extension signs it, and the page
// checks what came back before sending anything. The key never enters the page, let alone the
// server; nothing here ever asks for one.
import { minePow } from "nostr-tools/nip13";
import { verifyEvent } from "nostr-tools/pure";

const HEX64 = /^[0-9a-f]{64}$/;

/** A signer that did something other than sign what it was asked, as the key it named. */
export class SignerRefusal extends Error {}

/** Whether the browser offers a NIP-07 signer (``window.nostr``). */
export function hasSigner() {
  const nostr = globalThis.window?.nostr;
  return typeof nostr?.getPublicKey === "function" && typeof nostr?.signEvent === "function";
}

/** The signer's public key (hex), checked to be one. */
export async function signerPubkey() {
  const pubkey = await window.nostr.getPublicKey();
  if (typeof pubkey !== "string" || !HEX64.test(pubkey)) {
    throw new SignerRefusal("the Nostr signer gave no valid public key");
  }
  return pubkey;
}

/**
 * The request event for ``op`` (on ``taskId``, or none for create) carrying ``body`` as its
 * content, signed by the user's signer, with the idempotency key it signs in its key tag.
 * The tags bind the signature to one operation on one task, as taskhold's Python client does.
 * ``powBitsFor(pubkey)`` says the NIP-13 proof of work taskhold asks of that key (its
 * reputation policy); the page mines it before the signer signs, since the nonce is signed.
 */
export async function signRequest({ kind, op, taskId, body, extraTags = [], powBitsFor = async () => 0 }) {
  const idempotencyKey = crypto.randomUUID();
  const tags = [["op", op]];
  if (taskId != null) tags.push(["task", taskId]);
  tags.push(["key", idempotencyKey], ...extraTags);
  const template = {
    kind,
    created_at: Math.floor(Date.now() / 1000),
    tags,
    content: JSON.stringify(body),
  };
  const pubkey = await signerPubkey();
  const bits = await powBitsFor(pubkey);
  if (bits > 0) {
    const { id: _id, pubkey: _pubkey, ...mined } = minePow({ ...template, pubkey }, bits);
    Object.assign(template, mined);
  }
  const event = await window.nostr.signEvent(structuredClone(template));
  checkSigned(event, template, pubkey);
  return { event, idempotencyKey, pubkey };
}

/** Refuses an event that is not ``template`` signed, validly, by ``pubkey``: a hostile or
 * broken signer must not make the page send a request its user did not mean. */
function checkSigned(event, template, pubkey) {
  if (event === null || typeof event !== "object") {
    throw new SignerRefusal("the Nostr signer returned no event");
  }
  if (event.pubkey !== pubkey) {
    throw new SignerRefusal(
      "the Nostr signer signed with another key than the one it gave the page; nothing was sent",
    );
  }
  const same =
    event.kind === template.kind &&
    event.content === template.content &&
    event.created_at === template.created_at &&
    JSON.stringify(event.tags) === JSON.stringify(template.tags);
  if (!same) {
    throw new SignerRefusal("the Nostr signer changed the request it was asked to sign; nothing was sent");
  }
  if (!verifyEvent(event)) {
    throw new SignerRefusal("the Nostr signer's signature does not verify; nothing was sent");
  }
}
