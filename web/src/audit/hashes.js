// sha256 over the bytes a hex string stands for, by @noble/hashes: how a preimage is checked
// against the payment hash the log published for it.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";

export function sha256Hex(hex) {
  return bytesToHex(sha256(hexToBytes(hex)));
}
