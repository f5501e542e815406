"""Who signs a participant's requests: a key file, or a NIP-46 remote signer (a bunker).

A key file holds one Nostr secret (``nsec1…`` or 64 hex characters) and must be readable by its
owner only (mode 0600, as ``ssh`` insists for a private key): a key others can read is refused,
not used. No error repeats the file's content.

A remote signer is named by its ``bunker://<remote-signer-pubkey>?relay=…&secret=…`` string
(``--signer``, or ``TASKHOLD_SIGNER`` so the secret stays out of the process list). It is only
parsed here; the command connects to it (:func:`taskhold.nostr.remote_signer.remote_signer`)
when it runs, and every write is signed there. No error repeats the string: it holds a secret.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from taskhold.nostr import NostrKeys
from taskhold.nostr.remote_signer import BunkerAddress

__all__ = ["Identity", "IdentityError", "create_key_file", "participant_identity"]

Identity = NostrKeys | BunkerAddress
"""A key read from its file, or the address of the remote signer that holds it."""


class IdentityError(Exception):
    """The key or signer the participant named cannot be used: a usage error (exit code 2)."""


def participant_identity(key_file: Path | None, signer: str | None) -> Identity | None:
    """The key, or the remote signer, to sign with; None when neither a key file nor a signer
    was given (reads only)."""
    if signer is not None:
        if key_file is not None:
            raise IdentityError("give --key-file or --signer, not both")
        try:
            return BunkerAddress.parse(signer)
        except ValueError as exc:
            raise IdentityError(f"--signer: {exc}") from None
    if key_file is None:
        return None
    return _read_key_file(key_file)


def _read_key_file(path: Path) -> NostrKeys:
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise IdentityError(f"key file {path} is not a regular file")
        if stat.S_IMODE(mode) & 0o077:
            raise IdentityError(
                f"key file {path} can be read by others (mode {stat.S_IMODE(mode):04o});"
                f" run: chmod 600 {path}"
            )
        text = path.read_text()
    except OSError as exc:
        raise IdentityError(f"cannot read key file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise IdentityError(f"key file {path} holds no Nostr secret key") from None
    try:
        return NostrKeys.parse(text.strip())
    except ValueError:
        raise IdentityError(
            f"key file {path} holds no Nostr secret key (expected nsec1… or 64 hex characters)"
        ) from None


def create_key_file(path: Path) -> NostrKeys:
    """A fresh key, written to a new file created 0600; an existing file is never replaced."""
    keys = NostrKeys.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise IdentityError(f"{path} exists already; it is left as it is") from None
    except OSError as exc:
        raise IdentityError(f"cannot create key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(keys.secret_hex_unsafe() + "\n")
    return keys
