"""Sealed secrets: small secrets that must exist in memory, kept on disk only encrypted.

A sealed blob is ``MAGIC | nonce (12) | AES-256-GCM ciphertext and tag`` in
``<data_dir>/keys/sealed/<name>.bin``; the AAD is the name, so a blob copied over another name
does not open. The key that seals them never leaves the key store that implements
:class:`SecretSealer`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = [
    "SEALED_DIR",
    "SealedBlob",
    "SealedSecretMissing",
    "SecretSealer",
    "sealed_dir",
    "validate_name",
]

SEALED_DIR = Path("keys") / "sealed"
MAGIC = b"THSEAL1\x00"
NONCE_BYTES = 12
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class SealedSecretMissing(LookupError):
    """No sealed blob of that name exists."""


@runtime_checkable
class SecretSealer(Protocol):
    """A key store that can seal secrets with a key it never hands out."""

    def seal(self, name: str, plaintext: bytes) -> None:
        """Encrypt ``plaintext`` and store it as ``name`` (replacing an older blob atomically)."""
        ...

    def unseal(self, name: str) -> bytes:
        """The plaintext of ``name``; raises :class:`SealedSecretMissing` if there is none."""
        ...

    def sealed_names(self) -> list[str]:
        """Names of the sealed blobs that exist (never their contents)."""
        ...


def sealed_dir(data_dir: Path) -> Path:
    return data_dir / SEALED_DIR


def validate_name(name: str) -> str:
    if _NAME.fullmatch(name) is None or ".." in name:
        raise ValueError(f"not a valid sealed secret name: {name!r} (use a-z, 0-9, '.', '_', '-')")
    return name


class SealedBlob:
    """The on-disk side of sealing: file layout, atomic replacement, owner-only permissions."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        return self.directory / f"{validate_name(name)}.bin"

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name[: -len(".bin")] for p in self.directory.glob("*.bin"))

    def write(self, name: str, nonce: bytes, ciphertext: bytes) -> None:
        target = self.path(name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC + nonce + ciphertext)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, name: str) -> tuple[bytes, bytes]:
        """``(nonce, ciphertext)`` of ``name``."""
        target = self.path(name)
        try:
            blob = target.read_bytes()
        except FileNotFoundError:
            raise SealedSecretMissing(f"no sealed secret named {name!r}") from None
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise ValueError(f"sealed secret {name!r} is damaged ({target})")
        body = blob[len(MAGIC) :]
        return body[:NONCE_BYTES], body[NONCE_BYTES:]

    def aad(self, name: str) -> bytes:
        return validate_name(name).encode()
