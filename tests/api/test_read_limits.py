"""Reads are rate limited per client IP, and the client IP cannot be named by the client.

The proxy tests run the real uvicorn server: its own default believes ``X-Forwarded-For`` from
127.0.0.1, so a client on loopback (or behind a local tunnel) could name a fresh address per
request and never run out of tokens.
"""

from __future__ import annotations

from typing import Any

import httpx
from support.stacks import Stack, served


async def test_reads_over_the_ip_rate_are_429_with_retry_after(open_custom: Any) -> None:
    stack: Stack = await open_custom(rate_limit_read_ip_per_s=0.1, rate_limit_read_ip_burst=3)
    for path in ("/v1/info", "/v1/tasks", "/v1/reputation/" + "a" * 64):
        assert (await stack.http.get(path)).status_code == 200, path
    response = await stack.http.get("/v1/tasks/" + "0" * 64)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "10"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limited"
    assert "reads" in response.json()["detail"]


async def _statuses(url: str, forwarded_for: list[str]) -> list[int]:
    async with httpx.AsyncClient(base_url=url) as http:
        return [
            (await http.get("/v1/info", headers={"X-Forwarded-For": ip})).status_code
            for ip in forwarded_for
        ]


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(open_custom: Any) -> None:
    stack: Stack = await open_custom(rate_limit_read_ip_per_s=0.01, rate_limit_read_ip_burst=2)
    assert stack.settings.trusted_proxies == []  # the default
    async with served(stack) as url:
        statuses = await _statuses(url, ["203.0.113.1", "203.0.113.2", "203.0.113.3"])
    assert statuses == [200, 200, 429]  # one peer, one bucket, whatever it claims


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(open_custom: Any) -> None:
    stack: Stack = await open_custom(
        rate_limit_read_ip_per_s=0.01, rate_limit_read_ip_burst=2, trusted_proxies="127.0.0.1"
    )
    assert stack.settings.trusted_proxies == ["127.0.0.1"]
    async with served(stack) as url:
        assert await _statuses(url, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [200] * 3
        assert await _statuses(url, ["203.0.113.1", "203.0.113.1"]) == [200, 429]
