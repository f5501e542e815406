"""The zero-setup key store: one random 32-byte key in a file only the owner can read."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .base import preimage_message, secret_message

__all__ = ["FileKeyStore"]


class FileKeyStore:
    """Preimage derivation from a key file (created with mode 0600 on first use).

    Loss of the file means in-flight hold invoices can no longer be settled, only cancelled:
    back it up with the data directory.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._key = self._load_or_create(path)

    @staticmethod
    def _load_or_create(path: Path) -> bytes:
        if path.exists():
            key = path.read_bytes()
            if len(key) != 32:
                raise ValueError(f"key file {path} is damaged: expected 32 bytes")
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key

    def __repr__(self) -> str:
        return f"FileKeyStore({str(self._path)!r})"

    def derive_preimage(self, task_id: str, funding_round: int) -> bytes:
        return hmac.new(self._key, preimage_message(task_id, funding_round), "sha256").digest()

    def payment_hash(self, task_id: str, funding_round: int) -> bytes:
        return hashlib.sha256(self.derive_preimage(task_id, funding_round)).digest()

    def derive_secret(self, name: str) -> bytes:
        return hmac.new(self._key, secret_message(name), "sha256").digest()
