"""A thin async client for lnd's REST gateway: TLS pinning, the macaroon, JSON and streams.

Only transport lives here. Every failure leaves through :func:`~.lnd_errors.map_lnd_error`, so
callers see :mod:`taskhold.lightning.base` exceptions and nothing from httpx.

Nothing happens at construction: the TLS certificate and macaroon are read when the first request
is made, so an ``LndRest`` can be built in a composition root before the node is up. The macaroon
is held by an :class:`httpx.Auth` that adds it to each request; it is not in any ``repr``.

Encoding rules (lnd's protojson): ``bytes`` fields are base64 in bodies, base64url in paths;
64-bit integers come back as JSON strings. Streams are newline-delimited ``{"result": ...}`` or
``{"error": {...}}`` objects.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from taskhold.lightning.base import LightningError
from taskhold.lightning.lnd_errors import GatewayError, map_lnd_error

__all__ = [
    "JSONObject",
    "LndRest",
    "NodeConnection",
    "b64",
    "b64url",
    "from_b64",
    "json_int",
    "load_node_connection",
]

_STALE_CONNECTION = (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)
"""How a dropped keep-alive connection fails on reuse (before any answer was read)."""

JSONObject = dict[str, Any]


def b64(data: bytes) -> str:
    """Standard base64, the form lnd's JSON bodies use for ``bytes`` fields."""
    return base64.b64encode(data).decode("ascii")


def b64url(data: bytes) -> str:
    """URL-safe base64, the form lnd's REST paths take for ``bytes`` parameters."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def from_b64(text: str) -> bytes:
    """Decode a ``bytes`` field lnd sent (standard base64; URL-safe tolerated)."""
    return base64.b64decode(text.replace("-", "+").replace("_", "/"))


def json_int(value: object) -> int:
    """An integer field of lnd's JSON: 64-bit ones arrive as strings, missing ones as absent."""
    if value is None or value == "":
        return 0
    if isinstance(value, int | str):
        return int(value)
    raise LightningError(f"lnd sent {value!r} where an integer was expected")


@dataclass(frozen=True, slots=True)
class NodeConnection:
    """How to reach one lnd node, as the devnet's connection file records it."""

    rest_url: str
    tls_cert_path: str
    macaroon_path: str
    pubkey: str = ""


def load_node_connection(path: str | Path, node: str, *, admin: bool = False) -> NodeConnection:
    """Read ``node``'s entry from a devnet connection file (``devnet.json``).

    ``macaroon_path`` is the macaroon taskhold uses: for an escrow node the devnet's baked
    least-privilege one (:mod:`.lnd_permissions`). ``admin`` asks for the entry's
    ``admin_macaroon_path`` instead, an explicit choice (devnet tooling, or an operator who
    wants taskhold on admin); an entry without one has only the one macaroon."""
    document = json.loads(Path(path).read_text())
    nodes = document.get("nodes", {})
    if node not in nodes:
        raise LightningError(f"no node {node!r} in {path}; it has {sorted(nodes)}")
    entry = nodes[node]
    macaroon = entry["macaroon_path"]
    if admin:
        macaroon = entry.get("admin_macaroon_path", macaroon)
    return NodeConnection(
        rest_url=entry["rest_url"],
        tls_cert_path=entry["tls_cert_path"],
        macaroon_path=macaroon,
        pubkey=entry.get("pubkey", ""),
    )


class _MacaroonAuth(httpx.Auth):
    """Adds the macaroon to each request, so it never sits in the client's headers."""

    def __init__(self, macaroon_hex: str) -> None:
        self._macaroon_hex = macaroon_hex

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Grpc-Metadata-macaroon"] = self._macaroon_hex
        yield request

    def __repr__(self) -> str:
        return "<macaroon redacted>"


def _gateway_error(body: bytes, http_status: int | None) -> GatewayError:
    try:
        document = json.loads(body)
    except ValueError:
        return GatewayError(None, body[:200].decode("utf-8", "replace"), http_status)
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        document = document["error"]  # a stream's error chunk
    if not isinstance(document, dict) or "message" not in document:
        return GatewayError(None, body[:200].decode("utf-8", "replace"), http_status)
    code = document.get("code")
    return GatewayError(
        code if isinstance(code, int) else None, str(document["message"]), http_status
    )


class LndRest:
    """One lnd node's REST endpoint. ``timeout`` bounds connect and each unary call.

    Two connection pools, each bounded: ``max_connections`` for the calls a caller waits on
    (unary calls and payment streams: settle, cancel, lookups, pay), ``max_subscriptions`` for
    long-lived invoice subscriptions (``stream(..., subscription=True)``). A subscription that
    stays open for an invoice's whole life can then never make a settle or cancel queue.
    """

    def __init__(
        self,
        rest_url: str,
        tls_cert_path: str | Path,
        macaroon_path: str | Path,
        *,
        timeout: float = 30.0,
        max_connections: int = 32,
        max_subscriptions: int = 8,
    ) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.tls_cert_path = Path(tls_cert_path)
        self.macaroon_path = Path(macaroon_path)
        self.timeout = timeout
        self._limits = {
            False: httpx.Limits(max_connections=max_connections),
            True: httpx.Limits(max_connections=max_subscriptions),
        }
        self._http: dict[bool, httpx.AsyncClient] = {}

    def __repr__(self) -> str:
        return f"LndRest({self.rest_url!r})"

    def _client(self, subscription: bool = False) -> httpx.AsyncClient:
        if subscription not in self._http:
            reading = self.tls_cert_path
            try:
                tls = ssl.create_default_context(cadata=reading.read_text())
                reading = self.macaroon_path
                macaroon_hex = reading.read_bytes().hex()
            except (OSError, ssl.SSLError) as exc:
                raise LightningError(
                    f"cannot use {reading} for lnd at {self.rest_url}: {exc}"
                ) from None
            self._http[subscription] = httpx.AsyncClient(
                base_url=self.rest_url,
                verify=tls,
                auth=_MacaroonAuth(macaroon_hex),
                timeout=self.timeout,
                limits=self._limits[subscription],
            )
        return self._http[subscription]

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> JSONObject:
        """One unary call; returns the decoded JSON object.

        A pooled connection the node (or the network) dropped while it sat idle fails on its
        first use without the node having seen the request; that one failure is retried once on
        a fresh connection. Every unary call taskhold makes is safe to repeat: lookups,
        settle and cancel are idempotent at the node, and a repeated hold invoice is refused
        as ``AlreadyExists``, which the funding step already handles.
        """
        client = self._client()
        try:
            try:
                response = await client.request(method, path, json=body, params=params)
            except _STALE_CONNECTION:
                response = await client.request(method, path, json=body, params=params)
        except httpx.TransportError as exc:
            raise map_lnd_error(exc) from None
        if response.status_code != 200:
            raise map_lnd_error(_gateway_error(response.content, response.status_code))
        document = response.json()
        if not isinstance(document, dict):
            raise LightningError(f"lnd answered {path} with {type(document).__name__}")
        return document

    async def stream(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
        subscription: bool = False,
    ) -> AsyncGenerator[JSONObject, None]:
        """Yield each ``result`` of a server stream; an ``error`` chunk raises its mapped error.

        ``read_timeout`` bounds the silence between two messages (``None``: wait forever); when
        it runs out the stream ends with :class:`~taskhold.lightning.base.NodeUnreachable`.
        ``subscription``: a long-lived stream, carried by the subscriptions' own pool.
        Close the iterator (``contextlib.aclosing``) to drop the connection early.
        """
        client = self._client(subscription)
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        try:
            async with client.stream(
                method, path, json=body, params=params, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    raise map_lnd_error(
                        _gateway_error(await response.aread(), response.status_code)
                    )
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    message = json.loads(line)
                    if message.get("error"):
                        raise map_lnd_error(_gateway_error(line.encode(), response.status_code))
                    result = message.get("result")
                    if isinstance(result, dict):
                        yield result
        except httpx.TransportError as exc:
            raise map_lnd_error(exc) from None

    async def aclose(self) -> None:
        """Close both connection pools. Safe to call twice."""
        clients, self._http = list(self._http.values()), {}
        for http in clients:
            await http.aclose()
