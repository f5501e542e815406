"""The seed of an embedded Lightning node, derived by the key store and never stored.

An LDK node derives its wallet and channel keys from 64 bytes of entropy. taskhold derives them
from the key store's own key (:class:`~taskhold.keys.base.SecretDeriver`), so the node's keys are
as safe as the preimage key, come back after any restart, and need no second backup.
"""

from __future__ import annotations

from .base import KeyStore, SecretDeriver
from .errors import KeyStoreUnavailable

__all__ = ["LDK_SEED_NAME", "ldk_node_seed"]

LDK_SEED_NAME = "ldk-node-seed"


def ldk_node_seed(keys: KeyStore) -> bytes:
    """64 bytes: two derived secrets, ``ldk-node-seed/0`` and ``ldk-node-seed/1``."""
    if not isinstance(keys, SecretDeriver):
        raise KeyStoreUnavailable(f"{keys!r} cannot derive an LDK node's seed")
    return keys.derive_secret(f"{LDK_SEED_NAME}/0") + keys.derive_secret(f"{LDK_SEED_NAME}/1")
