"""Key custody: preimage derivation (and later signing and sealed secrets)."""

from .base import KeyStore
from .file import FileKeyStore

__all__ = ["FileKeyStore", "KeyStore"]
