"""Key store faults: internal, never shown with a secret in the message."""

from __future__ import annotations

from taskhold.errors import Fault

__all__ = ["KeyStoreUnavailable"]


class KeyStoreUnavailable(Fault):
    """The key store cannot be opened or used: missing token, key or PIN, or a refused PIN."""
