"""The ``devnet`` fixture: the regtest Lightning network (btcd + lnd escrow, employer, worker,
swap, and the swap server), started once per test run and shared with the contract suite's lnd
harness. See ``tests/support/devnet_network.py`` for reuse (``TASKHOLD_DEVNET_DIR``) and binaries.

Use it from any test under ``tests/devnet/``::

    @pytest.mark.devnet
    async def test_something(devnet: DevnetHandle) -> None:
        escrow = devnet.backend("escrow")
"""

from __future__ import annotations

import pytest
from support.devnet_network import DevnetHandle, get_devnet


@pytest.fixture(scope="session")
def devnet() -> DevnetHandle:
    return get_devnet()
