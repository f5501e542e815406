"""Checking a NIP-01 event's id and signature without trusting anything about its origin.

``Event.from_json`` in nostr-sdk parses a tampered event happily, and it accepts upper-case hex
ids. So :func:`verify_event` insists on lower-case hex (one spelling per event, which makes event
ids usable as replay keys), calls ``verify()``, and recomputes the id from the dict itself, so the
dict a caller stores or embeds is exactly the one that was signed, whatever nostr-sdk normalises.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from nostr_sdk import Event

__all__ = ["nip01_id", "verify_event"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


def verify_event(event: object) -> bool:
    """True if ``event`` is a NIP-01 event dict whose id and Schnorr signature both check out.

    Any malformed input gives False, never an exception: this is called on untrusted data.
    """
    if not isinstance(event, dict):
        return False
    event_id, pubkey, sig = event.get("id"), event.get("pubkey"), event.get("sig")
    if not (_is_hex(_HEX64, event_id) and _is_hex(_HEX64, pubkey) and _is_hex(_HEX128, sig)):
        return False
    try:
        parsed = Event.from_json(json.dumps(event, ensure_ascii=False, allow_nan=False))
        if not parsed.verify():
            return False
        return nip01_id(event) == event_id
    except Exception:  # untrusted input: every failure means "does not verify"
        return False


def _is_hex(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def nip01_id(event: dict[str, Any]) -> str:
    """The NIP-01 id: sha256 of the event's canonical serialisation, lower hex."""
    serialized = json.dumps(
        [0, event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]],
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(serialized.encode()).hexdigest()
