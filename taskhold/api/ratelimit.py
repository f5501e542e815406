"""Rate limits: on writes a token bucket per client IP and one per signing pubkey, on reads
(GET) a more generous bucket per client IP.

The client IP is the peer address, or the ``X-Forwarded-For`` client only when the peer is one
of the ``trusted_proxies`` (uvicorn is started by ``taskhold.server.api_server``, which says so):
anybody else could name a fresh address per request and never run out of tokens.

The write IP bucket is taken before the body is even parsed; the pubkey bucket only after the
signature verified (``WriteLimits.admit``, a write gate), so nobody can drain someone else's
bucket with forged events. A refusal is 429 with ``Retry-After`` (whole seconds until the next
token). Buckets live in this process: with several replicas each enforces its own share.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from types import MappingProxyType

from starlette.requests import Request

from taskhold.envelope import SignedRequest
from taskhold.errors import Refusal, RefusalCode
from taskhold.settings import Settings

__all__ = ["RateLimited", "TokenBuckets", "WriteLimits", "client_ip", "write_limits"]


class RateLimited(Refusal):
    status = 429
    code = RefusalCode.RATE_LIMITED

    def __init__(self, what: str, retry_after_s: float, action: str = "writes") -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(f"too many {action} from this {what}; retry in {seconds} s")
        self.headers = MappingProxyType({"Retry-After": str(seconds)})
        self.extra = MappingProxyType({"retry_after_s": seconds})


class TokenBuckets:
    """``burst`` tokens per key, refilled at ``rate_per_s``; the least recently used keys are
    forgotten past ``max_keys`` (a forgotten key starts full again)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float | None:
        """Take one token: None if there was one, else the seconds until there is."""
        if self.rate_per_s <= 0:
            return None
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = None
        else:
            wait = (1.0 - tokens) / self.rate_per_s
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


class WriteLimits:
    def __init__(
        self,
        per_ip: TokenBuckets,
        per_pubkey: TokenBuckets,
        per_ip_reads: TokenBuckets | None = None,
    ) -> None:
        self.per_ip = per_ip
        self.per_pubkey = per_pubkey
        self.per_ip_reads = per_ip_reads or TokenBuckets(0, 1)

    def check_ip(self, ip: str) -> None:
        wait = self.per_ip.take(ip)
        if wait is not None:
            raise RateLimited("address", wait)

    def check_read_ip(self, ip: str) -> None:
        wait = self.per_ip_reads.take(ip)
        if wait is not None:
            raise RateLimited("address", wait, "reads")

    async def admit(self, request: SignedRequest) -> None:
        wait = self.per_pubkey.take(request.pubkey)
        if wait is not None:
            raise RateLimited("pubkey", wait)

    def to_json(self) -> dict[str, float]:
        return {
            "per_ip_per_s": self.per_ip.rate_per_s,
            "per_ip_burst": self.per_ip.burst,
            "per_pubkey_per_s": self.per_pubkey.rate_per_s,
            "per_pubkey_burst": self.per_pubkey.burst,
            "reads_per_ip_per_s": self.per_ip_reads.rate_per_s,
            "reads_per_ip_burst": self.per_ip_reads.burst,
        }


def write_limits(settings: Settings) -> WriteLimits:
    return WriteLimits(
        TokenBuckets(settings.rate_limit_ip_per_s, settings.rate_limit_ip_burst),
        TokenBuckets(settings.rate_limit_pubkey_per_s, settings.rate_limit_pubkey_burst),
        TokenBuckets(settings.rate_limit_read_ip_per_s, settings.rate_limit_read_ip_burst),
    )


def client_ip(request: Request) -> str:
    """The address the limits count: the peer as uvicorn reports it (see the module doc)."""
    return request.client.host if request.client else "unknown"
