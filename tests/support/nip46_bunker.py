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

import asyncio
import contextlib
import json
import secrets
from typing import Any, Literal
from urllib.parse import quote

from nostr_sdk import (
    Client,
    EventBuilder,
    Filter,
    Keys,
    Kind,
    Nip44Version,
    RelayUrl,
    ReqTarget,
    Tag,
    Timestamp,
    nip04_decrypt,
    nip44_decrypt,
    nip44_encrypt,
)

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
        self._client: Client | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def uri(self) -> str:
        relay = quote(self.relay_url, safe="")
        return f"bunker://{self.signer_pubkey}?relay={relay}&secret={self.secret}"

    async def start(self) -> None:
        client = Client()
        await client.add_relay(RelayUrl.parse(self.relay_url))
        await client.connect()
        notifications = client.notifications()
        requests = (
            Filter()
            .kind(Kind(KIND_NIP46))
            .pubkey(self._signer_keys.public_key())
            .since(Timestamp.from_secs(Timestamp.now().as_secs() - 5))
        )
        output = await client.subscribe(ReqTarget.auto([requests]))
        self._client = client

        async def serve() -> None:
            while (note := await notifications.next()) is not None:
                if note.is_shutdown():
                    return
                if not note.is_message():
                    continue
                message = note.message.as_enum()
                if message.is_event_msg() and message.subscription_id == output.id:
                    await self._answer(message.event)

        self._serving = asyncio.create_task(serve())

    async def stop(self) -> None:
        if self._serving is not None:
            self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving
        if self._client is not None:
            await self._client.shutdown()
            await asyncio.sleep(0.1)

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
        assert self._client is not None
        await self._client.send_event(answer)

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
            signer = NostrKeys.generate() if self.behaviour == "wrong_key" else self.user
            content = asked["content"] + (" (changed)" if self.behaviour == "tamper" else "")
            signed = signer.sign_event(asked["kind"], content, asked["tags"], asked["created_at"])
            return {"result": json.dumps(signed)}
        return {"error": f"{method} is not offered here"}
