"""What the browser tests share: one real ``taskhold serve --lightning sim`` per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.browser import chromium_or_skip
from support.crash_harness import Serve
from support.task_cli import serve_on_sim


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """The server a module's browser tests run against (skipped without Chromium first, so a
    machine without a browser starts no server)."""
    chromium_or_skip()
    with serve_on_sim(tmp_path_factory.mktemp("serve")) as serve:
        yield serve
