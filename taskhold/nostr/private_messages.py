"""NIP-17 private messages: a kind-14 rumor, sealed (kind 13) and gift-wrapped (kind 1059).

The rumor is signed by nobody, the seal by the sender and encrypted (NIP-44 v2) to the
receiver, the wrap by a one-time key and encrypted again: a relay sees only the receiver's
pubkey in the wrap's ``p`` tag and a randomised ``created_at``. Only the receiver's key opens it,
and the seal inside proves who sent it. Everything leaves as plain JSON dicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nostr_sdk import (
    Event,
    Keys,
    NostrSdkError,
    PublicKey,
    Tag,
    UnwrappedGift,
    nip17_make_private_msg,
)

from .entries import tag_value

__all__ = ["GIFT_WRAP_KIND", "PrivateMessage", "open_private_message", "wrap_private_message"]

GIFT_WRAP_KIND = 1059
"""NIP-17's gift wrap: the kind every private message leaves as."""


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    """A gift wrap opened by its receiver: who sealed it, and the rumor inside."""

    sender: str
    kind: int
    content: str
    tags: list[list[str]]

    def tag(self, name: str) -> str | None:
        return tag_value({"tags": self.tags}, name)


def wrap_private_message(
    sender: Keys, receiver_hex: str, text: str, tags: list[list[str]]
) -> dict[str, Any]:
    """The gift wrap carrying ``text`` (and ``tags``, in the rumor) to ``receiver_hex``."""
    try:
        wrap = nip17_make_private_msg(
            sender,
            PublicKey.parse(receiver_hex),
            text,
            rumor_extra_tags=[Tag.parse(list(tag)) for tag in tags],
        )
    except NostrSdkError as exc:
        raise ValueError(f"cannot wrap a private message: {exc}") from None
    wrapped: dict[str, Any] = json.loads(wrap.as_json())
    return wrapped


def open_private_message(receiver: Keys, gift_wrap: dict[str, Any]) -> PrivateMessage:
    """Open a gift wrap with the receiver's key; ValueError if it is not theirs or not valid."""
    try:
        event = Event.from_json(json.dumps(gift_wrap, ensure_ascii=False))
        if not event.verify():
            raise ValueError("the gift wrap's id or signature does not verify")
        opened = UnwrappedGift.from_gift_wrap(receiver, event)
    except NostrSdkError as exc:
        raise ValueError(f"cannot open this gift wrap: {exc}") from None
    rumor = opened.rumor()
    return PrivateMessage(
        sender=opened.sender().to_hex(),
        kind=rumor.kind().as_u16(),
        content=rumor.content(),
        tags=[list(tag.to_vec()) for tag in rumor.tags()],
    )
