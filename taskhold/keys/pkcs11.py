"""The PKCS#11 key store: the preimage key and the sealing key live in an HSM token.

Two secret keys, both generated inside the token as sensitive and never extractable:

- ``taskhold-preimage-v1``, a generic secret used with ``CKM_SHA256_HMAC``: each task's preimage
  is computed in the token over :func:`~taskhold.keys.base.preimage_message`, the same input the
  file store uses, so the key never exists outside the HSM;
- ``taskhold-seal-v1``, AES-256 used with ``CKM_AES_GCM`` to seal the secrets that must exist in
  memory (the operator's Nostr key, macaroons): see :mod:`taskhold.keys.sealed`.

PKCS#11 logins are per process, not per session, so the process keeps one logged-in session per
token and every store on that token shares it; python-pkcs11 serialises calls on a session and
we hold a lock across multi-step operations, so the store is safe to use from several threads.
All token errors are mapped to :class:`KeyStoreUnavailable` here, and none of them repeats a PIN.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, SecretKey
from pkcs11.exceptions import (
    GeneralError,
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PinLocked,
    PKCS11Error,
)
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin, SignMixin
from pydantic import SecretStr

from .base import preimage_message, secret_message
from .errors import KeyStoreUnavailable
from .sealed import NONCE_BYTES, SealedBlob

__all__ = [
    "HMAC_KEY_LABEL",
    "SEAL_KEY_LABEL",
    "KeyInfo",
    "Pkcs11Config",
    "Pkcs11KeyStore",
]

HMAC_KEY_LABEL = "taskhold-preimage-v1"
SEAL_KEY_LABEL = "taskhold-seal-v1"

_NEVER_OUT = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.MODIFIABLE: False,
    Attribute.COPYABLE: False,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}
_TEMPLATES: dict[str, tuple[KeyType, dict[Attribute, Any]]] = {
    HMAC_KEY_LABEL: (
        KeyType.GENERIC_SECRET,
        {**_NEVER_OUT, Attribute.SIGN: True, Attribute.VERIFY: False,
         Attribute.ENCRYPT: False, Attribute.DECRYPT: False},
    ),
    SEAL_KEY_LABEL: (
        KeyType.AES,
        {**_NEVER_OUT, Attribute.SIGN: False, Attribute.VERIFY: False,
         Attribute.ENCRYPT: True, Attribute.DECRYPT: True},
    ),
}  # fmt: skip
_SHOWN_ATTRIBUTES = {
    "sensitive": Attribute.SENSITIVE,
    "extractable": Attribute.EXTRACTABLE,
    "always_sensitive": Attribute.ALWAYS_SENSITIVE,
    "never_extractable": Attribute.NEVER_EXTRACTABLE,
    "modifiable": Attribute.MODIFIABLE,
    "sign": Attribute.SIGN,
    "encrypt": Attribute.ENCRYPT,
    "decrypt": Attribute.DECRYPT,
    "wrap": Attribute.WRAP,
}


@dataclass(frozen=True)
class Pkcs11Config:
    module_path: Path
    token_label: str
    pin: SecretStr = field(repr=False)
    sealed_dir: Path


@dataclass(frozen=True)
class KeyInfo:
    """What ``keys status`` shows about one token key: never its value."""

    label: str
    key_type: str
    bits: int
    attributes: dict[str, bool]


class _SharedSession:
    def __init__(self, session: pkcs11.Session, pin_digest: bytes) -> None:
        self.session = session
        self.pin_digest = pin_digest
        self.lock = threading.RLock()
        self.users = 0


_registry_lock = threading.Lock()
_sessions: dict[tuple[str, str], _SharedSession] = {}


def _find_token(lib: Any, label: str, module: str) -> pkcs11.Token:
    try:
        return lib.get_token(token_label=label)  # type: ignore[no-any-return]
    except NoSuchToken:
        if _sessions:  # re-reading the slot list would close the sessions in use
            raise KeyStoreUnavailable(
                f"no PKCS#11 token labelled {label!r} on {module} (restart to see new tokens)"
            ) from None
        lib.reinitialize()  # a token created by another process since this one loaded the module
    try:
        return lib.get_token(token_label=label)  # type: ignore[no-any-return]
    except NoSuchToken:
        raise KeyStoreUnavailable(
            f"no PKCS#11 token labelled {label!r} on {module}: run `taskhold keys init` "
            "(SoftHSM2) or initialise the token with your HSM's tools"
        ) from None


def _acquire(config: Pkcs11Config) -> _SharedSession:
    module = str(config.module_path)
    pin_digest = hashlib.sha256(config.pin.get_secret_value().encode()).digest()
    with _registry_lock:
        shared = _sessions.get((module, config.token_label))
        if shared is not None and not hmac.compare_digest(shared.pin_digest, pin_digest):
            raise KeyStoreUnavailable(f"the token {config.token_label!r} refused the PIN")
        if shared is None:
            if not config.module_path.exists():
                raise KeyStoreUnavailable(f"PKCS#11 module {module} does not exist")
            try:
                lib = pkcs11.lib(module)
                token = _find_token(lib, config.token_label, module)
                session = token.open(rw=True, user_pin=config.pin.get_secret_value())
            except (PinIncorrect, PinLocked) as exc:
                raise KeyStoreUnavailable(
                    f"the token {config.token_label!r} refused the PIN ({type(exc).__name__})"
                ) from None
            except PKCS11Error as exc:
                raise KeyStoreUnavailable(
                    f"cannot open token {config.token_label!r}: {type(exc).__name__}"
                ) from None
            shared = _SharedSession(session, pin_digest)
            _sessions[(module, config.token_label)] = shared
        shared.users += 1
        return shared


def _release(config: Pkcs11Config, shared: _SharedSession) -> None:
    with _registry_lock:
        shared.users -= 1
        if shared.users > 0:
            return
        _sessions.pop((str(config.module_path), config.token_label), None)
        with shared.lock, contextlib.suppress(PKCS11Error):  # gone with the module: nothing left
            shared.session.close()


class Pkcs11KeyStore:
    """Preimages derived in the token; small secrets sealed by it. Open with the config."""

    def __init__(self, config: Pkcs11Config, *, create_missing: bool = False) -> None:
        """Open the token's session; with ``create_missing`` generate any key that is absent
        (what ``keys init`` does). Without it, a token lacking its keys is refused, so a
        typo in the label never silently starts with fresh keys."""
        self._config = config
        self._blobs = SealedBlob(config.sealed_dir)
        self._shared: _SharedSession | None = _acquire(config)
        self.created: list[str] = []
        try:
            self._keys = {
                label: self._key(label, create_missing=create_missing) for label in _TEMPLATES
            }
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"Pkcs11KeyStore(module={str(self._config.module_path)!r}, token={self.token!r})"

    @property
    def token(self) -> str:
        return self._config.token_label

    @property
    def _open(self) -> _SharedSession:
        if self._shared is None:
            raise KeyStoreUnavailable(f"the key store on token {self.token!r} is closed")
        return self._shared

    def _key(self, label: str, *, create_missing: bool) -> SecretKey:
        key_type, template = _TEMPLATES[label]
        session = self._open.session
        with self._open.lock:
            try:
                key = session.get_key(ObjectClass.SECRET_KEY, key_type, label=label)
                assert isinstance(key, SecretKey)
                return key
            except NoSuchKey:
                if not create_missing:
                    raise KeyStoreUnavailable(
                        f"token {self.token!r} has no key {label!r}: run `taskhold keys init`"
                    ) from None
            try:
                key = session.generate_key(
                    key_type, 256, label=label, id=label.encode(), store=True, template=template
                )
            except PKCS11Error as exc:
                raise KeyStoreUnavailable(
                    f"token {self.token!r} cannot create key {label!r}: {type(exc).__name__}"
                ) from None
        self.created.append(label)
        return key

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            _release(self._config, shared)

    # preimages ---------------------------------------------------------------------------

    def derive_preimage(self, task_id: str, funding_round: int) -> bytes:
        return self._hmac(preimage_message(task_id, funding_round))

    def derive_secret(self, name: str) -> bytes:
        return self._hmac(secret_message(name))

    def _hmac(self, message: bytes) -> bytes:
        with self._open.lock:
            try:
                return cast(SignMixin, self._keys[HMAC_KEY_LABEL]).sign(
                    message, mechanism=Mechanism.SHA256_HMAC
                )
            except PKCS11Error as exc:
                raise KeyStoreUnavailable(
                    f"HMAC in the token failed: {type(exc).__name__}"
                ) from None

    def payment_hash(self, task_id: str, funding_round: int) -> bytes:
        return hashlib.sha256(self.derive_preimage(task_id, funding_round)).digest()

    # sealing ---------------------------------------------------------------------------

    def seal(self, name: str, plaintext: bytes) -> None:
        nonce = os.urandom(NONCE_BYTES)
        params = GCMParams(nonce, self._blobs.aad(name), 128)
        with self._open.lock:
            try:
                ciphertext = cast(EncryptMixin, self._keys[SEAL_KEY_LABEL]).encrypt(
                    plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params
                )
            except PKCS11Error as exc:
                raise KeyStoreUnavailable(f"sealing failed: {type(exc).__name__}") from None
        assert isinstance(ciphertext, bytes)  # one buffer in, one buffer out
        self._blobs.write(name, nonce, ciphertext)

    def unseal(self, name: str) -> bytes:
        nonce, ciphertext = self._blobs.read(name)
        params = GCMParams(nonce, self._blobs.aad(name), 128)
        with self._open.lock:
            try:
                plaintext = cast(DecryptMixin, self._keys[SEAL_KEY_LABEL]).decrypt(
                    ciphertext, mechanism=Mechanism.AES_GCM, mechanism_param=params
                )
            except GeneralError:
                raise ValueError(
                    f"sealed secret {name!r} does not open with this token's key "
                    "(wrong token, wrong name, or the file was altered)"
                ) from None
            except PKCS11Error as exc:
                raise KeyStoreUnavailable(f"unsealing failed: {type(exc).__name__}") from None
        assert isinstance(plaintext, bytes)
        return plaintext

    def sealed_names(self) -> list[str]:
        return self._blobs.names()

    # inspection --------------------------------------------------------------------------

    def describe(self) -> list[KeyInfo]:
        """Labels, types and protection attributes of the token keys; no values."""
        infos = []
        with self._open.lock:
            for label, key in self._keys.items():
                values = key.get_attributes(list(_SHOWN_ATTRIBUTES.values()))
                infos.append(
                    KeyInfo(
                        label=label,
                        key_type=KeyType(key[Attribute.KEY_TYPE]).name,
                        bits=int(key[Attribute.VALUE_LEN]) * 8,
                        attributes={n: bool(values[a]) for n, a in _SHOWN_ATTRIBUTES.items()},
                    )
                )
        return infos

    def token_key(self, label: str) -> SecretKey:
        """The token object itself, for tests that prove it cannot be read out."""
        return self._keys[label]
