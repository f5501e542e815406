"""The ``server`` fixture of the participant command's tests: one real ``taskhold serve`` on
the simulator (with its wallet routes) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.crash_harness import Serve
from support.task_cli import serve_on_sim


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with serve_on_sim(tmp_path_factory.mktemp("serve")) as serve:
        yield serve
