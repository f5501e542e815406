"""A local regtest Lightning network: btcd and four lnd nodes (escrow, employer, worker, swap),
and the swap server on the ``swap`` node (:mod:`taskhold.devnet.swap_server`, test infrastructure
playing Boltz).

``up`` starts and funds it and writes ``<data_dir>/devnet.json``, the connection file that the
lnd backend, the tests and the demo read; ``down`` stops every process it started. Binaries come
from ``scripts/build-lnd``. The CLI (``taskhold devnet ...``) is in :mod:`taskhold.devnet.cli`.
"""

from __future__ import annotations

from taskhold.devnet.control import DevnetError, down, mine, status, up
from taskhold.devnet.layout import DEFAULT_BASE_PORT, NODE_NAMES, Layout, default_data_dir

__all__ = [
    "DEFAULT_BASE_PORT",
    "NODE_NAMES",
    "DevnetError",
    "Layout",
    "default_data_dir",
    "down",
    "mine",
    "status",
    "up",
]
