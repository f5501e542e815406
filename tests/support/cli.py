"""Running CLI commands in process: the logging they configure must not outlive the command."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def isolated_logging() -> Iterator[None]:
    """Commands point structlog and the root logger at CliRunner's streams, which close when
    the command ends; later tests would then log into a closed file."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
