"""NIP-13 proof of work: counting an event id's leading zero bits, and the committed target."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nostr_sdk import get_leading_zero_bits

__all__ = ["committed_target", "pow_bits"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def pow_bits(event_id: str) -> int:
    """Leading zero bits of a 64-hex event id (NIP-13 difficulty); 0 for anything else."""
    if not isinstance(event_id, str) or _HEX64.fullmatch(event_id) is None:
        return 0
    bits: int = get_leading_zero_bits(bytes.fromhex(event_id))
    return bits


def committed_target(event: Mapping[str, Any]) -> int:
    """The difficulty the event's ``["nonce", n, target]`` tag commits to; 0 without one.

    NIP-13: the miner commits to a target so that a lucky low-effort id cannot pass for work
    aimed at a higher difficulty.
    """
    for tag in event.get("tags", ()):
        if len(tag) >= 3 and tag[0] == "nonce" and str(tag[2]).isdigit():
            return int(tag[2])
    return 0
