"""Running the API with uvicorn, in the foreground (``serve``) or in the background (``demo``,
tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from taskhold.api.application import create_api
from taskhold.services import Services

__all__ = ["api_server", "free_port", "running_server"]


def api_server(services: Services, host: str, port: int, **options: Any) -> uvicorn.Server:
    """The uvicorn server for taskhold's API: the one way ``taskhold serve`` (foreground) and
    :func:`running_server` (background) start it.

    ``X-Forwarded-For`` is believed only from ``trusted_proxies``: uvicorn's own default trusts
    it from 127.0.0.1, so a client talking to loopback could name any address it likes and
    spread its writes over endless rate-limit buckets.
    """
    proxies = list(services.settings.trusted_proxies)
    config = uvicorn.Config(
        create_api(services),
        host=host,
        port=port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or "",
        **options,
    )
    return uvicorn.Server(config)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_server(services: Services, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``services`` on ``host:port`` until the block exits; yields the base URL."""
    server = api_server(services, host, port, log_level="warning", lifespan="on")
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped while starting")
        await asyncio.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
