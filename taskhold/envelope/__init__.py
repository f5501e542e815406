"""The signed-request envelope: the participant-signed Nostr event every write carries.

| module | job |
|---|---|
| ``signed_request`` | shape, signature, kind, ``op``/``task`` tags, ``created_at`` window, body |

It needs neither FastAPI nor a database, so the actions, the reputation gate and the rate limits
check a request without reaching up into the HTTP layer.
"""

from .signed_request import SignedRequest, verify_signed_request

__all__ = ["SignedRequest", "verify_signed_request"]
