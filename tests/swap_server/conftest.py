"""The in-process swap server world for every test here (no devnet)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.swap_server_world import ServerWorld, new_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[ServerWorld]:
    w = new_world(tmp_path)
    yield w
    await w.close()
