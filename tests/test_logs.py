"""Log lines go to the ``sys.stderr`` of the moment they are written.

A command run in-process (``CliRunner`` in the tests, or any embedding) configures logging
while stderr is a stream of its own, then closes that stream. If the logger kept it, every later
log line of the process would raise ``ValueError: I/O operation on closed file`` and take the
escrow step that logged it down with it."""

from __future__ import annotations

import io
import sys

import pytest
import structlog

from taskhold.logs import configure_logging


def test_a_log_line_after_the_configuring_stream_closed_goes_to_the_current_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    borrowed = io.StringIO()
    real = sys.stderr
    sys.stderr = borrowed
    try:
        configure_logging("INFO")
    finally:
        sys.stderr = real
    borrowed.close()

    structlog.get_logger().error("escrow_step_failed", task_id="t1")

    assert "escrow_step_failed" in capsys.readouterr().err
