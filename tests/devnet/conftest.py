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
from support.devnet_network import DevnetHandle, get_devnet, release_pool_devnet


@pytest.fixture(scope="session")
def devnet() -> DevnetHandle:
    return get_devnet()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the pool devnet after the last ``pool_devnet`` test in a row (its modules are named
    ``test_pool_*`` so they run together): its idle nodes would slow every later test."""
    if item.get_closest_marker("pool_devnet") is None:
        return
    if nextitem is None or nextitem.get_closest_marker("pool_devnet") is None:
        release_pool_devnet()
