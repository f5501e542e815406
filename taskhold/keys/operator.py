"""The operator's Nostr key: where it is kept, loading it at start, rotating it.

With a sealing key store (PKCS#11) the key exists on disk only sealed (``operator``; the one
before the last rotation as ``operator.previous``) and is unsealed once, at start. With the file
store it is ``keys/operator.key`` (``keys/operator.previous.key``), mode 0600.

BIP-340 signing has no PKCS#11 mechanism, so the key itself must be in memory to sign; sealing
keeps it off the disk and in the HSM's custody at rest.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from taskhold.journal.chain import AuditLog
from taskhold.nostr import NostrKeys
from taskhold.tasks import SYSTEM_ACTOR

from .base import KeyStore
from .errors import KeyStoreUnavailable
from .sealed import SealedSecretMissing, SecretSealer
from .signer import load_or_create_key_file

__all__ = [
    "OPERATOR",
    "OPERATOR_PREVIOUS",
    "load_operator_keys",
    "load_previous_operator_keys",
    "operator_key_file",
    "restore_operator_key",
    "rotate_operator_key",
    "seal_plaintext_operator_key",
]

OPERATOR = "operator"
OPERATOR_PREVIOUS = "operator.previous"


def operator_key_file(data_dir: Path, name: str = OPERATOR) -> Path:
    return data_dir / "keys" / f"{name}.key"


def _unseal(sealer: SecretSealer, name: str) -> NostrKeys | None:
    try:
        return NostrKeys.from_secret_hex(sealer.unseal(name).decode())
    except SealedSecretMissing:
        return None


def load_operator_keys(
    keystore: KeyStore, data_dir: Path, *, audit: AuditLog | None = None
) -> NostrKeys:
    """The operator's keys, created on first use (the creation is noted in ``audit``)."""
    if isinstance(keystore, SecretSealer):
        keys = _unseal(keystore, OPERATOR)
        if keys is not None:
            return keys
        if operator_key_file(data_dir).exists():
            raise KeyStoreUnavailable(
                f"{operator_key_file(data_dir)} holds the operator key in plain text: run "
                "`taskhold keys init --keystore pkcs11` to seal it"
            )
        keys = NostrKeys.generate()
        keystore.seal(OPERATOR, keys.secret_hex_unsafe().encode())
    else:
        path = operator_key_file(data_dir)
        if path.exists():
            return load_or_create_key_file(path)
        keys = load_or_create_key_file(path)
    if audit is not None:
        audit.note(
            SYSTEM_ACTOR, "keys.operator_created", keys.pubkey_hex, {"pubkey": keys.pubkey_hex}
        )
    return keys


def load_previous_operator_keys(keystore: KeyStore, data_dir: Path) -> NostrKeys | None:
    """The key the last rotation replaced, if any: content sealed to the operator before the
    rotation (a private task's details) still opens with it. Never created."""
    if isinstance(keystore, SecretSealer):
        return _unseal(keystore, OPERATOR_PREVIOUS)
    path = operator_key_file(data_dir, OPERATOR_PREVIOUS)
    return load_or_create_key_file(path) if path.exists() else None


def seal_plaintext_operator_key(sealer: SecretSealer, data_dir: Path) -> NostrKeys | None:
    """Move a plaintext ``operator.key`` (from the file store) into the sealed store.

    The file is deleted only after the sealed copy opened and matched. Returns the keys moved,
    or None when there was nothing to move or a sealed key already exists (the file stays).
    """
    path = operator_key_file(data_dir)
    if not path.exists() or _unseal(sealer, OPERATOR) is not None:
        return None
    keys = load_or_create_key_file(path)
    sealer.seal(OPERATOR, keys.secret_hex_unsafe().encode())
    check = _unseal(sealer, OPERATOR)
    if check is None or check.pubkey_hex != keys.pubkey_hex:
        raise KeyStoreUnavailable("the sealed operator key did not read back; the file is kept")
    path.unlink()
    return keys


def _write_key_file(path: Path, keys: NostrKeys) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(keys.secret_hex_unsafe())
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rotate_operator_key(keystore: KeyStore, data_dir: Path) -> tuple[NostrKeys, NostrKeys]:
    """Replace the operator key with a new one, keeping the old as ``operator.previous``.

    Returns ``(old, new)`` so the caller can publish a rotation entry signed by the old key that
    names the new one. Stop the server first: a running one keeps signing with the old key
    until it restarts. The old key is saved before the new one replaces it, so a crash between
    the two writes leaves the old key in both places, never no key.
    """
    if isinstance(keystore, SecretSealer):
        old = _unseal(keystore, OPERATOR)
        if old is None:
            raise KeyStoreUnavailable("no sealed operator key to rotate: run `taskhold keys init`")
        new = NostrKeys.generate()
        keystore.seal(OPERATOR_PREVIOUS, old.secret_hex_unsafe().encode())
        keystore.seal(OPERATOR, new.secret_hex_unsafe().encode())
        return old, new
    path = operator_key_file(data_dir)
    if not path.exists():
        raise KeyStoreUnavailable(f"no operator key at {path} to rotate: run `taskhold keys init`")
    old = load_or_create_key_file(path)
    new = NostrKeys.generate()
    _write_key_file(operator_key_file(data_dir, OPERATOR_PREVIOUS), old)
    _write_key_file(path, new)
    return old, new


def restore_operator_key(keystore: KeyStore, data_dir: Path, old: NostrKeys) -> None:
    """Undo ``rotate_operator_key`` when its log entry could not be committed: ``old`` signs
    again (``operator.previous`` keeps it too)."""
    if isinstance(keystore, SecretSealer):
        keystore.seal(OPERATOR, old.secret_hex_unsafe().encode())
    else:
        _write_key_file(operator_key_file(data_dir), old)
