"""Choosing and opening the key store from the settings: a table, not a chain of ``if``s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from taskhold.settings import Settings

from .base import KeyStore
from .errors import KeyStoreUnavailable
from .file import FileKeyStore
from .sealed import sealed_dir
from .softhsm import default_pin_file, is_softhsm, use_data_dir_token

if TYPE_CHECKING:
    from .pkcs11 import Pkcs11Config

__all__ = ["KEY_STORES", "open_key_store", "pkcs11_config", "preimage_key_file", "resolve_pin"]


def preimage_key_file(data_dir: Path) -> Path:
    return data_dir / "keys" / "preimage.key"


def resolve_pin(settings: Settings) -> SecretStr | None:
    """The token's user PIN: ``TASKHOLD_PKCS11_PIN``, else the PIN file, else the data dir's."""
    if settings.pkcs11_pin is not None:
        return settings.pkcs11_pin
    pin_file = settings.pkcs11_pin_file or default_pin_file(settings.data_dir)
    if pin_file.exists():
        return SecretStr(pin_file.read_text().strip())
    if settings.pkcs11_pin_file is not None:
        raise KeyStoreUnavailable(f"PIN file {pin_file} does not exist")
    return None


def pkcs11_config(settings: Settings) -> Pkcs11Config:
    """The PKCS#11 store's configuration; with SoftHSM2 and no ``SOFTHSM2_CONF``, the token
    store under the data directory (made by ``taskhold keys init``)."""
    from .pkcs11 import Pkcs11Config

    if is_softhsm(settings.pkcs11_module):
        use_data_dir_token(settings.data_dir)
    pin = resolve_pin(settings)
    if pin is None:
        raise KeyStoreUnavailable(
            "no PIN for the PKCS#11 token: set TASKHOLD_PKCS11_PIN or TASKHOLD_PKCS11_PIN_FILE"
        )
    return Pkcs11Config(
        module_path=settings.pkcs11_module,
        token_label=settings.pkcs11_token_label,
        pin=pin,
        sealed_dir=sealed_dir(settings.data_dir),
    )


def _file(settings: Settings, create_missing: bool) -> KeyStore:
    return FileKeyStore(preimage_key_file(settings.data_dir))


def _pkcs11(settings: Settings, create_missing: bool) -> KeyStore:
    from .pkcs11 import Pkcs11KeyStore  # loads the PKCS#11 extension only when chosen

    return Pkcs11KeyStore(pkcs11_config(settings), create_missing=create_missing)


KEY_STORES: dict[str, Callable[[Settings, bool], KeyStore]] = {"file": _file, "pkcs11": _pkcs11}


def open_key_store(settings: Settings, *, create_missing: bool = False) -> KeyStore:
    """The key store ``settings.keystore`` names. The PKCS#11 one refuses a token without its
    keys unless ``create_missing`` (``keys init``); close it with ``close_key_store``."""
    return KEY_STORES[settings.keystore](settings, create_missing)
