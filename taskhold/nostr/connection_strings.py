"""How NIP-46 and NIP-47 name a service: ``<scheme>://<service-pubkey>?relay=…&secret=…``.

A ``bunker://`` string names a remote signer, a ``nostr+walletconnect://`` string a wallet
service; both carry a secret (a password for the bunker, the client's own key for the wallet),
so a parsed string keeps it out of ``repr`` and :meth:`ConnectionString.scrub` blanks it out of
any text before it travels on. No parse error repeats the string.

:func:`answer_within` is the one way a call to such a service is awaited: bounded by a timeout
(a silent service is a TimeoutError naming the service and the method, never a hang), with
nostr-sdk's errors turned into the caller's error class, scrubbed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from nostr_sdk import NostrSdkError

__all__ = ["ConnectionString", "answer_within"]

_HEX64 = re.compile(r"[0-9a-f]{64}")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConnectionString:
    """One parsed connection string; subclasses name the scheme and the service."""

    pubkey: str
    """The service's own key (not the user's): requests are encrypted and ``p``-tagged to it."""
    relays: tuple[str, ...]
    uri: str = field(repr=False)
    secret: str = field(repr=False)

    scheme: ClassVar[str] = ""
    service: ClassVar[str] = "the service"
    secret_required: ClassVar[bool] = False

    @classmethod
    def sdk_parse(cls, text: str) -> Any:
        """nostr-sdk's own parse of the string: what it will be handed later."""
        raise NotImplementedError

    @classmethod
    def parse(cls, text: str) -> Self:
        """ValueError (never repeating the text) unless ``text`` is one of this scheme with a
        64-hex service pubkey and ws(s) relays (and, where required, a 64-hex secret)."""
        text = text.strip()
        parts = urlsplit(text)
        form = f"{cls.scheme}://<pubkey>?relay=wss://…&secret=…"
        if parts.scheme != cls.scheme:
            raise ValueError(f"{cls.service} is named by {form}")
        if _HEX64.fullmatch(parts.netloc) is None:
            raise ValueError(f"{cls.scheme}://<pubkey>: {cls.service}'s pubkey is 64 lower hex")
        query = parse_qs(parts.query)
        relays = tuple(query.get("relay", ()))
        if not relays or not all(urlsplit(url).scheme in ("ws", "wss") for url in relays):
            raise ValueError(f"{cls.scheme}://…?relay=ws(s)://…: name {cls.service}'s relay")
        secret = (query.get("secret") or [""])[0]
        if cls.secret_required and re.fullmatch(r"[0-9a-fA-F]{64}", secret) is None:
            raise ValueError(f"{cls.scheme}://…&secret=…: the secret is 64 hex characters")
        try:
            cls.sdk_parse(text)
        except NostrSdkError:
            raise ValueError(f"not a {cls.scheme}:// string nostr-sdk can use") from None
        return cls(parts.netloc, relays, text, secret)

    def scrub(self, text: str) -> str:
        """``text`` with the secret (and the whole string, which holds it) blanked out."""
        for hidden in (self.uri, self.secret):
            if hidden:
                text = text.replace(hidden, "***")
        return text


async def answer_within(
    service: ConnectionString,
    timeout_s: float,
    method: str,
    call: Awaitable[T],
    error: Callable[[str], Exception],
    option: str,
) -> T:
    """``await call``, bounded by ``timeout_s``; nostr-sdk's error (the service refused, or
    answered with an error) becomes ``error`` with the service's words, scrubbed."""
    try:
        async with asyncio.timeout(timeout_s):
            return await call
    except TimeoutError:
        raise TimeoutError(
            f"{service.service} {service.pubkey[:16]}… did not answer {method} within"
            f" {timeout_s:g} s ({option})"
        ) from None
    except NostrSdkError as exc:
        raise error(service.scrub(f"{service.service} refused {method}: {exc}")) from None
