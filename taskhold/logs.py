"""Logging setup: structlog key-value lines on stderr. Secrets are never passed to a logger;
the tests read every line to hold us to that."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging"]


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*args: object) -> structlog.PrintLogger:
    """A logger on the ``sys.stderr`` of the moment, not of configuration time: a command run
    in-process (a test's ``CliRunner``) swaps stderr for a stream it closes afterwards, and a
    logger bound to that stream would fail every later log line of the process."""
    return structlog.PrintLogger(file=sys.stderr)
