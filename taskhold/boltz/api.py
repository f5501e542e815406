"""``BoltzApi``: the Boltz API v2 REST calls a participant's client makes, over httpx.

Only transport and mapping live here: every failure leaves as one of ``taskhold.boltz.errors``
(refused, unavailable, protocol), never as an httpx or JSON exception, and every answer is
parsed by its model's strict ``from_json``. The base URL includes ``/v2``
(``https://api.boltz.exchange/v2``, or the devnet swap server's); the same client works against
either, because it speaks only the published API. Numbers are decoded with ``Decimal`` so a fee
percentage never passes through a float.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from .errors import BoltzProtocolError, BoltzRefused, BoltzUnavailable, shorten
from .fields import Fields, is_swap_id
from .models import (
    LockupTransaction,
    PartialSignature,
    RefundRequest,
    ReverseClaimRequest,
    ReversePair,
    ReverseRequest,
    ReverseResponse,
    SubmarineClaimDetails,
    SubmarinePair,
    SubmarineRequest,
    SubmarineResponse,
    SwapStatus,
    parse_pairs,
)

__all__ = ["DEFAULT_TIMEOUT", "BoltzApi"]

DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
"""Boltz answers in well under a second; a call that takes longer is treated as unavailable
rather than left to hang a client that is about to move funds."""


_STALE_CONNECTION = (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)
"""How a kept-alive connection the server closed fails on reuse."""
_TRY_LATER = frozenset({408, 429})
"""4xx answers that say "not now" (timeout, rate limit) rather than "no": unavailable."""


def _swap_path(swap_id: str) -> str:
    """A swap id goes into a URL path, so it is restricted to what Boltz issues."""
    if not is_swap_id(swap_id):
        raise ValueError(f"not a Boltz swap id: {swap_id[:70]!r}")
    return swap_id


class BoltzApi:
    """One Boltz endpoint. Use as ``async with BoltzApi(url) as api`` or call ``aclose()``.

    ``transport`` replaces the network (tests pass an ``httpx.MockTransport``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, follow_redirects=False
        )

    def __repr__(self) -> str:
        return f"BoltzApi({self.base_url!r})"

    async def __aenter__(self) -> BoltzApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call. A GET on a pooled connection the server dropped while idle is repeated
        once on a fresh one; a POST is not, since Boltz may have acted on it."""
        try:
            try:
                response = await self._http.request(method, path, json=body)
            except _STALE_CONNECTION:
                if method != "GET":
                    raise
                response = await self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            raise BoltzUnavailable(f"Boltz at {self.base_url} timed out on {path}") from None
        except httpx.HTTPError as exc:
            raise BoltzUnavailable(
                f"Boltz at {self.base_url} unreachable on {path}: {type(exc).__name__}"
            ) from None
        status = response.status_code
        if status >= 500 or status in _TRY_LATER:
            raise BoltzUnavailable(f"Boltz at {self.base_url} failed on {path} (HTTP {status})")
        try:
            document = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            document = None
        if 400 <= status < 500:
            reason = document.get("error") if isinstance(document, dict) else None
            if not isinstance(reason, str):
                reason = response.content[:200].decode("utf-8", "replace") or f"HTTP {status}"
            raise BoltzRefused(reason, status)
        if not 200 <= status < 300:
            raise BoltzProtocolError(f"Boltz answered {path} with HTTP {status}")
        if document is None:
            raw = shorten(response.content[:80].decode("utf-8", "replace"))
            raise BoltzProtocolError(f"Boltz answered {path} with something not JSON: {raw!r}")
        return document

    # pairs and chain -----------------------------------------------------------------------

    async def submarine_pairs(self) -> dict[tuple[str, str], SubmarinePair]:
        return parse_pairs(await self._call("GET", "/swap/submarine"), SubmarinePair)

    async def reverse_pairs(self) -> dict[tuple[str, str], ReversePair]:
        return parse_pairs(await self._call("GET", "/swap/reverse"), ReversePair)

    async def chain_height(self, currency: str = "BTC") -> int:
        height: int = Fields(
            await self._call("GET", f"/chain/{currency}/height"), "height answer"
        ).whole("height")
        return height

    async def broadcast(self, tx_hex: str, currency: str = "BTC") -> str:
        """Broadcast through Boltz; a client with its own node should prefer that."""
        answer = await self._call("POST", f"/chain/{currency}/transaction", {"hex": tx_hex})
        txid: str = Fields(answer, "broadcast answer").text("id")
        return txid

    # swaps --------------------------------------------------------------------------------

    async def create_submarine(self, request: SubmarineRequest) -> SubmarineResponse:
        return SubmarineResponse.from_json(
            await self._call("POST", "/swap/submarine", request.to_json())
        )

    async def create_reverse(self, request: ReverseRequest) -> ReverseResponse:
        return ReverseResponse.from_json(
            await self._call("POST", "/swap/reverse", request.to_json())
        )

    async def swap_status(self, swap_id: str) -> SwapStatus:
        return SwapStatus.from_json(await self._call("GET", f"/swap/{_swap_path(swap_id)}"))

    async def submarine_lockup_transaction(self, swap_id: str) -> LockupTransaction:
        path = f"/swap/submarine/{_swap_path(swap_id)}/transaction"
        return LockupTransaction.from_json(await self._call("GET", path))

    async def reverse_lockup_transaction(self, swap_id: str) -> LockupTransaction:
        path = f"/swap/reverse/{_swap_path(swap_id)}/transaction"
        return LockupTransaction.from_json(await self._call("GET", path))

    async def submarine_claim_details(self, swap_id: str) -> SubmarineClaimDetails:
        path = f"/swap/submarine/{_swap_path(swap_id)}/claim"
        return SubmarineClaimDetails.from_json(await self._call("GET", path))

    async def post_submarine_claim_signature(
        self, swap_id: str, pub_nonce: bytes, partial_sig: bytes
    ) -> None:
        """Answer Boltz's claim (after ``cooperative.answer_submarine_claim`` checked the
        preimage); Boltz answers ``{}``."""
        body = PartialSignature(pub_nonce, partial_sig).to_json()
        await self._call("POST", f"/swap/submarine/{_swap_path(swap_id)}/claim", body)

    async def submarine_refund_signature(
        self, swap_id: str, pub_nonce: bytes, tx_hex: str, index: int
    ) -> PartialSignature:
        body = RefundRequest(pub_nonce, tx_hex, index).to_json()
        path = f"/swap/submarine/{_swap_path(swap_id)}/refund"
        return PartialSignature.from_json(await self._call("POST", path, body))

    async def reverse_claim_signature(
        self, swap_id: str, preimage: bytes, pub_nonce: bytes, tx_hex: str, index: int
    ) -> PartialSignature:
        body = ReverseClaimRequest(preimage, pub_nonce, tx_hex, index).to_json()
        path = f"/swap/reverse/{_swap_path(swap_id)}/claim"
        return PartialSignature.from_json(await self._call("POST", path, body))
