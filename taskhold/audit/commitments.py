"""Private content in the log: commitments and sealed copies, never the plaintext.

A private task's ``TaskCreated`` declares ``visibility: private``, an empty ``description``, a
``details_hash`` (sha256 of the details payload, 64 lower hex) and ``details_sealed``, the
NIP-44 copies by recipient (``{"sender", "ciphertext"}``); the employer's signed create request
carries the same hash and a copy for each of those readers and no description: the employer's
and the operator's are the signed ciphertexts, the others the operator's, sealed again from the
payload it checked (or, in older logs, the signed ones). A claim or assignment may add the
worker's copy, sealed by the operator. A sealed proof's ``ProofSubmitted`` has an empty
``proof``, a ``proof_hash`` and ``proof_sealed``, copies for the readers the worker sealed to
in the embedded proof, kept the same way. The auditor checks these shapes; it cannot open a copy.

A disclosure is the payload itself: ``disclosure_matches`` hashes it against the commitment
(written here again, from ``docs/public-log.md``, not imported from the writer).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from .nip01 import is_hex64, parse_json

__all__ = ["commitment_problems", "disclosure_matches"]

_GAINS_A_COPY = frozenset({"TaskClaimed", "WorkerAssigned"})


def disclosure_matches(payload: str, committed: str) -> bool:
    """Whether a disclosed payload hashes to the commitment in the log."""
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    return hmac.compare_digest(digest, committed.lower())


def commitment_problems(
    op: str, event: Mapping[str, Any], request: Mapping[str, Any] | None, operator: str
) -> list[str]:
    """What is ill-formed about an entry's commitment fields (empty when nothing is)."""
    if op == "TaskCreated":
        return _created_problems(event, request, operator)
    if op == "ProofSubmitted" and (event.get("proof_hash") or event.get("proof_sealed")):
        return _sealed_proof_problems(event, request, operator)
    if op in _GAINS_A_COPY and event.get("details_sealed") is not None:
        sealed = event["details_sealed"]
        problems = _copies_problems(sealed)
        if not problems and any(copy["sender"] != operator for copy in sealed.values()):
            problems.append("a worker's sealed copy must be sealed by the operator")
        return problems
    return []


def _created_problems(
    event: Mapping[str, Any], request: Mapping[str, Any] | None, operator: str
) -> list[str]:
    visibility = event.get("visibility", "public")
    if visibility == "public":
        if event.get("details_hash") is not None or event.get("details_sealed"):
            return ["a public task carries no details_hash or details_sealed"]
        return []
    if visibility != "private":
        return [f"visibility {visibility!r} (public or private)"]
    problems = []
    if event.get("description") != "":
        problems.append("a private task's description must be empty")
    details_hash = event.get("details_hash")
    if not is_hex64(details_hash):
        problems.append("details_hash must be 64 lower-case hex characters")
    problems.extend(_copies_problems(event.get("details_sealed")))
    if problems or request is None:
        return problems
    return _signed_as_recorded(event, request, operator, "details", "the employer")


def _sealed_proof_problems(
    event: Mapping[str, Any], request: Mapping[str, Any] | None, operator: str
) -> list[str]:
    """A sealed proof: no clear proof, a 64-hex ``proof_hash``, the worker's own copies."""
    problems = []
    if event.get("proof") != {}:
        problems.append("a sealed proof's entry carries no clear proof")
    if not is_hex64(event.get("proof_hash")):
        problems.append("proof_hash must be 64 lower-case hex characters")
    problems.extend(
        p.replace("details_sealed", "proof_sealed")
        for p in _copies_problems(event.get("proof_sealed"))
    )
    if problems or request is None:
        return problems or ["a sealed proof's entry embeds no proof"]
    return _signed_as_recorded(event, request, operator, "proof", "the worker")


def _signed_as_recorded(
    event: Mapping[str, Any], request: Mapping[str, Any], operator: str, item: str, signer: str
) -> list[str]:
    """The request's signer signed the entry's commitment and a copy for each reader the entry
    records, and nothing of the item in the clear. The signer's own copy and the operator's are
    the very ciphertexts signed; another reader's is either that too (logs written before the
    operator sealed them again) or one the operator sealed again from what it checked."""
    try:
        content = parse_json(request["content"])
    except (ValueError, KeyError, TypeError):
        return ["the embedded request's content is not JSON"]
    if not isinstance(content, dict):
        return ["the embedded request's content is not an object"]
    problems = []
    clear = "description" if item == "details" else "proof"
    if content.get(clear):
        problems.append(f"the embedded request carries a clear {clear}")
    if content.get(f"{item}_hash") != event[f"{item}_hash"]:
        problems.append(f"{item}_hash differs from the one {signer} signed")
    copies = event[f"{item}_sealed"]
    signed = content.get(f"{item}_sealed")
    sender = request.get("pubkey")
    if not isinstance(signed, dict) or set(signed) != set(copies):
        problems.append(f"{item}_sealed has copies for other readers than {signer} signed")
        return problems
    for reader, copy in copies.items():
        as_signed = copy["sender"] == sender and copy["ciphertext"] == signed[reader]
        resealed = reader not in (sender, operator) and copy["sender"] == operator
        if not (as_signed or resealed):
            problems.append(f"{item}_sealed differs from the copies {signer} signed")
            break
    return problems


def _copies_problems(sealed: object) -> list[str]:
    if not isinstance(sealed, dict) or not sealed:
        return ["details_sealed must map recipient pubkeys to sealed copies"]
    for recipient, copy in sealed.items():
        if (
            not is_hex64(recipient)
            or not isinstance(copy, dict)
            or set(copy) != {"sender", "ciphertext"}
            or not is_hex64(copy["sender"])
            or not isinstance(copy["ciphertext"], str)
            or not copy["ciphertext"]
        ):
            return ["details_sealed copies must be {sender: <hex pubkey>, ciphertext: <text>}"]
    return []
