"""taskhold's Nostr codec: the only package that imports ``nostr_sdk``.

nostr-sdk is alpha and breaks its API every minor release, so everything else in taskhold sees
plain JSON dicts and the small surface re-exported here. No database and no key custody here:
writing and publishing the log is :mod:`taskhold.publiclog`.

| module | job |
|---|---|
| ``kinds`` | the event kinds' defaults |
| ``entries`` | log entry tags and content, listings, canonical JSON, the state digest |
| ``signing`` | ``NostrKeys``: keys and BIP-340 event signing over nostr-sdk |
| ``verify`` | checking an event's id and signature |
| ``pow`` | NIP-13 proof of work |
| ``relays`` | the relay client: publish events, read the log back by sequence, stream |
| ``follow`` | following the log live: verified transitions in order, gap-free resume |
| ``embedded`` | the relay taskhold runs itself when none is configured |
| ``confidential`` | sealed copies (NIP-44 v2) of private content and their public commitments |
| ``sdk_buffers`` | a faster copy of strings into the Rust bindings' buffers, installed here |
"""

from . import sdk_buffers
from .kinds import KIND_LOG_ENTRY, KIND_PROOF, KIND_REQUEST
from .signing import NostrKeys, pubkey_hex
from .verify import verify_event

sdk_buffers.install()

__all__ = [
    "KIND_LOG_ENTRY",
    "KIND_PROOF",
    "KIND_REQUEST",
    "NostrKeys",
    "pubkey_hex",
    "verify_event",
]
