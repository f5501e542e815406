"""Every use of a key store's keys, recorded in the audit log.

The wrapper notes what was derived or unsealed (task, round, payment hash, secret name), never
the secret itself. The note is queued and written in a transaction of its own at once (see
:meth:`AuditLog.note`), so callers keep their synchronous ``KeyStore`` interface.
"""

from __future__ import annotations

import hashlib

from taskhold.journal.chain import AuditLog
from taskhold.tasks import SYSTEM_ACTOR

from .base import KeyStore, SecretDeriver
from .sealed import SecretSealer

__all__ = ["AuditedKeyStore", "AuditedSealingKeyStore", "audited", "close_key_store"]


class AuditedKeyStore:
    def __init__(self, inner: KeyStore, audit: AuditLog, *, actor: str = SYSTEM_ACTOR) -> None:
        self.inner = inner
        self.audit = audit
        self.actor = actor

    def __repr__(self) -> str:
        return f"Audited({self.inner!r})"

    def derive_preimage(self, task_id: str, funding_round: int) -> bytes:
        preimage = self.inner.derive_preimage(task_id, funding_round)
        self.audit.note(
            self.actor,
            "key.derive_preimage",
            task_id,
            {
                "funding_round": funding_round,
                "payment_hash": hashlib.sha256(preimage).hexdigest(),
            },
        )
        return preimage

    def payment_hash(self, task_id: str, funding_round: int) -> bytes:
        digest = self.inner.payment_hash(task_id, funding_round)
        self.audit.note(
            self.actor,
            "key.payment_hash",
            task_id,
            {"funding_round": funding_round, "payment_hash": digest.hex()},
        )
        return digest

    def derive_secret(self, name: str) -> bytes:
        if not isinstance(self.inner, SecretDeriver):
            raise TypeError(f"{self.inner!r} cannot derive secrets")
        secret = self.inner.derive_secret(name)
        self.audit.note(self.actor, "key.derive_secret", name, {})
        return secret

    def close(self) -> None:
        close_key_store(self.inner)


class AuditedSealingKeyStore(AuditedKeyStore):
    def __init__(self, inner: KeyStore, audit: AuditLog, *, actor: str = SYSTEM_ACTOR) -> None:
        if not isinstance(inner, SecretSealer):
            raise TypeError(f"{inner!r} cannot seal secrets")
        super().__init__(inner, audit, actor=actor)
        self._sealer = inner

    def seal(self, name: str, plaintext: bytes) -> None:
        self._sealer.seal(name, plaintext)
        self.audit.note(self.actor, "key.seal", name, {})

    def unseal(self, name: str) -> bytes:
        plaintext = self._sealer.unseal(name)
        self.audit.note(self.actor, "key.unseal", name, {})
        return plaintext

    def sealed_names(self) -> list[str]:
        return self._sealer.sealed_names()


def audited(store: KeyStore, audit: AuditLog, *, actor: str = SYSTEM_ACTOR) -> AuditedKeyStore:
    """``store`` with every key use noted in ``audit``; sealing stays available if it had it."""
    if isinstance(store, SecretSealer):
        return AuditedSealingKeyStore(store, audit, actor=actor)
    return AuditedKeyStore(store, audit, actor=actor)


def close_key_store(store: object) -> None:
    """Release what a key store holds (a PKCS#11 session); a no-op for the file store."""
    close = getattr(store, "close", None)
    if callable(close):
        close()
