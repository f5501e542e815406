"""NIP-01 event ids and BIP-340 signatures, computed here from the NIP text on coincurve.

Nothing in this module comes from the writer: the auditor must be able to catch a serialisation
bug in taskhold's own signing path, so it cannot share it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from enum import StrEnum
from functools import lru_cache
from typing import Any, cast

from coincurve import PublicKeyXOnly

__all__ = ["HEX64", "Verdict", "event_id", "is_hex64", "shape_error", "verify_event"]

HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


class Verdict(StrEnum):
    OK = "ok"
    MALFORMED = "malformed"
    BAD_ID = "bad_id"
    BAD_SIGNATURE = "bad_signature"


def is_hex64(value: object) -> bool:
    return isinstance(value, str) and HEX64.fullmatch(value) is not None


def shape_error(event: object) -> str | None:
    """Why ``event`` is not a well-formed NIP-01 event, or None when it is."""
    if type(event) is not dict and not isinstance(event, Mapping):
        return "not a JSON object"
    for name in ("id", "pubkey"):
        if not is_hex64(event.get(name)):
            return f"{name} is not 64 lowercase hex characters"
    sig = event.get("sig")
    if not isinstance(sig, str) or _HEX128.fullmatch(sig) is None:
        return "sig is not 128 lowercase hex characters"
    created_at, kind = event.get("created_at"), event.get("kind")
    if not isinstance(created_at, int) or isinstance(created_at, bool) or created_at < 0:
        return "created_at is not a non-negative integer"
    if not isinstance(kind, int) or isinstance(kind, bool) or not 0 <= kind <= 0xFFFF:
        return "kind is not an integer from 0 to 65535"
    if not isinstance(event.get("content"), str):
        return "content is not a string"
    tags = event.get("tags")
    if type(tags) is not list:
        return "tags is not a list"
    for tag in tags:
        if type(tag) is not list or not tag:
            return "a tag is not a non-empty list"
        for value in tag:
            if type(value) is not str:
                return "a tag holds something other than strings"
    return None


def event_id(event: Mapping[str, Any]) -> bytes:
    """sha256 of ``[0, pubkey, created_at, kind, tags, content]`` as compact UTF-8 JSON."""
    serialized = json.dumps(
        [0, event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(serialized.encode()).digest()


@lru_cache(maxsize=4096)
def _xonly(pubkey_hex: str) -> Any:
    return PublicKeyXOnly(bytes.fromhex(pubkey_hex))


def verify_event(event: object) -> Verdict:
    """Shape, then the id, then the BIP-340 signature over the id."""
    if shape_error(event) is not None:
        return Verdict.MALFORMED
    event = cast(Mapping[str, Any], event)
    digest = event_id(event)
    if digest.hex() != event["id"]:
        return Verdict.BAD_ID
    try:
        valid = bool(_xonly(event["pubkey"]).verify(bytes.fromhex(event["sig"]), digest))
    except (ValueError, TypeError):
        valid = False
    return Verdict.OK if valid else Verdict.BAD_SIGNATURE
