// Private content in the log (taskhold/audit/commitments.py): a private task's TaskCreated and a
// sealed proof carry a commitment (sha256 of the payload) and NIP-44 copies for their readers,
// never the plaintext, and the embedded request's signer signed that very commitment and those
// copies. The explorer checks these shapes as the auditor does; it cannot open a copy.
import { isHex64, isObject } from "./nip01.js";

const GAINS_A_COPY = new Set(["TaskClaimed", "WorkerAssigned"]);

/** Python's truthiness: empty strings, lists and objects, 0, null and false are false. */
function truthy(value) {
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

/** What is ill-formed about an entry's commitment fields (empty when nothing is). */
export function commitmentProblems(op, event, request, operator) {
  if (op === "TaskCreated") return createdProblems(event, request, operator);
  if (op === "ProofSubmitted" && (truthy(event.proof_hash) || truthy(event.proof_sealed))) {
    return sealedProofProblems(event, request, operator);
  }
  if (GAINS_A_COPY.has(op) && event.details_sealed !== undefined && event.details_sealed !== null) {
    const sealed = event.details_sealed;
    const problems = copiesProblems(sealed);
    if (!problems.length && Object.values(sealed).some((copy) => copy.sender !== operator)) {
      problems.push("a worker's sealed copy must be sealed by the operator");
    }
    return problems;
  }
  return [];
}

function createdProblems(event, request, operator) {
  const visibility = Object.hasOwn(event, "visibility") ? event.visibility : "public";
  if (visibility === "public") {
    const hashed = event.details_hash !== undefined && event.details_hash !== null;
    return hashed || truthy(event.details_sealed)
      ? ["a public task carries no details_hash or details_sealed"]
      : [];
  }
  if (visibility !== "private") return [`visibility ${pyRepr(visibility)} (public or private)`];
  const problems = [];
  if (event.description !== "") problems.push("a private task's description must be empty");
  if (!isHex64(event.details_hash)) problems.push("details_hash must be 64 lower-case hex characters");
  problems.push(...copiesProblems(event.details_sealed));
  if (problems.length || request === null) return problems;
  return signedAsRecorded(event, request, operator, "details", "the employer");
}

function sealedProofProblems(event, request, operator) {
  const problems = [];
  const proof = event.proof;
  if (!isObject(proof) || Object.keys(proof).length) {
    problems.push("a sealed proof's entry carries no clear proof");
  }
  if (!isHex64(event.proof_hash)) problems.push("proof_hash must be 64 lower-case hex characters");
  problems.push(...copiesProblems(event.proof_sealed).map((p) => p.replaceAll("details_sealed", "proof_sealed")));
  if (problems.length || request === null) {
    return problems.length ? problems : ["a sealed proof's entry embeds no proof"];
  }
  return signedAsRecorded(event, request, operator, "proof", "the worker");
}

function signedAsRecorded(event, request, operator, item, signer) {
  let content;
  try {
    content = JSON.parse(request.content);
  } catch {
    return ["the embedded request's content is not JSON"];
  }
  if (!isObject(content)) return ["the embedded request's content is not an object"];
  const problems = [];
  const clear = item === "details" ? "description" : "proof";
  if (truthy(content[clear])) problems.push(`the embedded request carries a clear ${clear}`);
  if (content[`${item}_hash`] !== event[`${item}_hash`]) {
    problems.push(`${item}_hash differs from the one ${signer} signed`);
  }
  const copies = event[`${item}_sealed`];
  const signed = content[`${item}_sealed`];
  const sender = request.pubkey;
  const sameReaders =
    isObject(signed) &&
    Object.keys(signed).length === Object.keys(copies).length &&
    Object.keys(copies).every((reader) => Object.hasOwn(signed, reader));
  if (!sameReaders) {
    problems.push(`${item}_sealed has copies for other readers than ${signer} signed`);
    return problems;
  }
  for (const [reader, copy] of Object.entries(copies)) {
    const asSigned = copy.sender === sender && copy.ciphertext === signed[reader];
    const resealed = reader !== sender && reader !== operator && copy.sender === operator;
    if (!(asSigned || resealed)) {
      problems.push(`${item}_sealed differs from the copies ${signer} signed`);
      break;
    }
  }
  return problems;
}

function copiesProblems(sealed) {
  if (!isObject(sealed) || !Object.keys(sealed).length) {
    return ["details_sealed must map recipient pubkeys to sealed copies"];
  }
  for (const [recipient, copy] of Object.entries(sealed)) {
    const keys = isObject(copy) ? Object.keys(copy).sort().join(",") : "";
    if (
      !isHex64(recipient) ||
      keys !== "ciphertext,sender" ||
      !isHex64(copy.sender) ||
      typeof copy.ciphertext !== "string" ||
      !copy.ciphertext
    ) {
      return ["details_sealed copies must be {sender: <hex pubkey>, ciphertext: <text>}"];
    }
  }
  return [];
}

/** A string as Python's repr shows it (the wording of the auditor's findings). */
export function pyRepr(value) {
  if (typeof value === "string") return `'${value}'`;
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  return JSON.stringify(value);
}
