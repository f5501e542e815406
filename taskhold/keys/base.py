"""The key store seam: where the secrets that move money live.

A task's preimage is ``HMAC-SHA256(K, "taskhold/preimage/v1" | task_id | funding_round)``, computed
inside the key store so ``K`` never leaves it and the preimage is never stored anywhere: it is
re-derived when the hold invoice is settled, also after the database was rebuilt.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

__all__ = [
    "PREIMAGE_LABEL",
    "SECRET_LABEL",
    "KeyStore",
    "SecretDeriver",
    "preimage_message",
    "secret_message",
]

PREIMAGE_LABEL = b"taskhold/preimage/v1"
SECRET_LABEL = b"taskhold/secret/v1"


def preimage_message(task_id: str, funding_round: int) -> bytes:
    """The HMAC input for one task and funding round; fields are length-framed, never ambiguous."""
    task = task_id.encode()
    return b"|".join(
        [PREIMAGE_LABEL, len(task).to_bytes(2, "big") + task, funding_round.to_bytes(4, "big")]
    )


def secret_message(name: str) -> bytes:
    """The HMAC input for a named secret; its label keeps it apart from every preimage."""
    encoded = name.encode()
    return b"|".join([SECRET_LABEL, len(encoded).to_bytes(2, "big") + encoded])


@runtime_checkable
class KeyStore(Protocol):
    """Derives preimages without ever handing out the key they come from."""

    def derive_preimage(self, task_id: str, funding_round: int) -> bytes:
        """The 32-byte preimage of one task's hold invoice. Call only to settle."""
        ...

    def payment_hash(self, task_id: str, funding_round: int) -> bytes:
        """``sha256`` of the preimage: safe to publish at funding."""
        ...


@runtime_checkable
class SecretDeriver(Protocol):
    """A key store that derives named 32-byte secrets from its key (an embedded node's seed),
    so they are never stored: the same store gives the same secret after any restart."""

    def derive_secret(self, name: str) -> bytes:
        """``HMAC-SHA256(K, "taskhold/secret/v1" | name)``."""
        ...


def hash_of(preimage: bytes) -> bytes:
    return hashlib.sha256(preimage).digest()
