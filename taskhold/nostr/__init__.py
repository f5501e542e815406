"""taskhold's Nostr layer: the only package that imports ``nostr_sdk``.

nostr-sdk is alpha and breaks its API every minor release, so everything else in taskhold sees
plain JSON dicts and the small surface re-exported here.
"""

from .kinds import KIND_LOG_ENTRY, KIND_PROOF, KIND_REQUEST
from .signing import NostrKeys, pubkey_hex
from .verify import verify_event

__all__ = [
    "KIND_LOG_ENTRY",
    "KIND_PROOF",
    "KIND_REQUEST",
    "NostrKeys",
    "pubkey_hex",
    "verify_event",
]
