"""A NIP-46 remote signer ("bunker") for tests, speaking the spec over a real relay.

nostr-sdk 0.45.1's Python bindings have the client side of NIP-46 (``NostrConnect``) but no
signer side (no ``NostrConnectRemoteSigner``: checked with ``dir(nostr_sdk)``), so this one is
built here on nostr-sdk's primitives: kind-24133 events, NIP-44 v2 (NIP-04 accepted on input, as
old clients send it), answers ``p``-tagged to the client. The remote-signer key is not the
user's key, as the spec allows, so a client that confuses the two fails.

``behaviour`` makes it hostile: ``refuse`` answers every request with an error, ``silent``
never answers, ``wrong_key`` claims the user's key but signs with another one, ``tamper`` signs
with the user's key an event other than the one asked for.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal
from urllib.parse import quote

from nostr_sdk import (
    EventBuilder,
    Filter,
    Keys,
    Kind,
    Nip44Version,
    Tag,
    nip04_decrypt,
    nip44_decrypt,
    nip44_encrypt,
)

from support.nostr_services import ServiceLoop, recent
from taskhold.nostr import NostrKeys

Behaviour = Literal["sign", "refuse", "silent", "wrong_key", "tamper"]

KIND_NIP46 = 24133


class Bunker:
    """Signs with ``user`` for whoever connects with ``secret``; ``methods`` records what was
    asked, in order."""

    def __init__(self, relay_url: str, user: NostrKeys, *, behaviour: Behaviour = "sign") -> None:
        self.relay_url = relay_url
        self.user = user
        self.behaviour = behaviour
        self.secret = secrets.token_hex(16)
        self._signer_keys = Keys.generate()
        self.signer_pubkey = self._signer_keys.public_key().to_hex()
        self.methods: list[str] = []
        self.kinds_signed: list[int] = []
        self._loop = ServiceLoop(relay_url)

    @property
    def uri(self) -> str:
        relay = quote(self.relay_url, safe="")
        return f"bunker://{self.signer_pubkey}?relay={relay}&secret={self.secret}"

    async def start(self) -> None:
        requests = Filter().kind(Kind(KIND_NIP46)).pubkey(self._signer_keys.public_key())
        await self._loop.start(recent(requests), self._answer)

    async def stop(self) -> None:
        await self._loop.stop()

    async def _answer(self, event: Any) -> None:
        if not event.verify():
            return
        client_key = event.author()
        secret = self._signer_keys.secret_key()
        try:
            plaintext = nip44_decrypt(secret, client_key, event.content())
        except Exception:  # an old client: NIP-04
            plaintext = nip04_decrypt(secret, client_key, event.content())
        request = json.loads(plaintext)
        method = request.get("method")
        self.methods.append(str(method))
        if self.behaviour == "silent":
            return
        reply: dict[str, Any] = {"id": request.get("id")}
        if self.behaviour == "refuse":
            reply["error"] = "the user declined this request"
        else:
            reply.update(self._result(str(method), request.get("params") or []))
        content = nip44_encrypt(secret, client_key, json.dumps(reply), Nip44Version.V2)
        answer = (
            EventBuilder(Kind(KIND_NIP46), content)
            .tags([Tag.public_key(client_key)])
            .finalize(self._signer_keys)
        )
        await self._loop.send(answer)

    def _result(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "connect":
            if params[:1] != [self.signer_pubkey] or params[1:2] != [self.secret]:
                return {"error": "wrong secret"}
            return {"result": "ack"}
        if method == "get_public_key":
            return {"result": self.user.pubkey_hex}
        if method == "ping":
            return {"result": "pong"}
        if method == "sign_event":
            asked = json.loads(params[0])
            self.kinds_signed.append(int(asked["kind"]))
            signer = NostrKeys.generate() if self.behaviour == "wrong_key" else self.user
            content = asked["content"] + (" (changed)" if self.behaviour == "tamper" else "")
            signed = signer.sign_event(asked["kind"], content, asked["tags"], asked["created_at"])
            return {"result": json.dumps(signed)}
        return {"error": f"{method} is not offered here"}
