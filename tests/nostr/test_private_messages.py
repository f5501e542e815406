"""NIP-17 private messages over nostr-sdk: only the receiver opens one, and the operator key
sends one only where its kind policy allows gift wraps."""

from __future__ import annotations

from typing import Any

import pytest

from taskhold.errors import Refusal
from taskhold.keys.signer import LocalSigner
from taskhold.nostr import NostrKeys


def test_only_the_receiver_opens_a_private_message() -> None:
    sender, receiver, other = NostrKeys.generate(), NostrKeys.generate(), NostrKeys.generate()
    wrap = sender.private_message(receiver.pubkey_hex, "hello", [["task", "t-1"]])
    assert wrap["kind"] == 1059
    assert wrap["pubkey"] not in (sender.pubkey_hex, receiver.pubkey_hex)
    assert ["p", receiver.pubkey_hex] in wrap["tags"]
    assert "hello" not in wrap["content"]
    message = receiver.open_private_message(wrap)
    assert (message.sender, message.kind, message.content) == (sender.pubkey_hex, 14, "hello")
    assert message.tag("task") == "t-1"
    for stranger in (sender, other):
        with pytest.raises(ValueError):
            stranger.open_private_message(wrap)


def test_a_tampered_gift_wrap_does_not_open() -> None:
    sender, receiver = NostrKeys.generate(), NostrKeys.generate()
    wrap = sender.private_message(receiver.pubkey_hex, "hello", [])
    for tampered in (
        {**wrap, "content": wrap["content"][:-4] + "AAA="},
        {**wrap, "sig": "0" * 128},
        {**wrap, "tags": [["p", sender.pubkey_hex]]},
    ):
        with pytest.raises(ValueError):
            receiver.open_private_message(tampered)


def test_the_signer_sends_private_messages_only_where_its_policy_allows() -> None:
    keys, receiver = NostrKeys.generate(), NostrKeys.generate()
    seen: list[dict[str, Any]] = []
    refused = LocalSigner(keys, allowed_kinds=frozenset({3910}), observer=seen.append)
    with pytest.raises(Refusal) as caught:
        refused.private_message(receiver.pubkey_hex, "hi", [])
    assert caught.value.code == "kind_not_allowed" and seen == []
    allowed = LocalSigner(keys, allowed_kinds=frozenset({1059}), observer=seen.append)
    wrap = allowed.private_message(receiver.pubkey_hex, "hi", [])
    (noted,) = seen
    assert noted == {
        "id": wrap["id"],
        "kind": 1059,
        "created_at": wrap["created_at"],
        "pubkey": keys.pubkey_hex,
    }
    assert receiver.open_private_message(wrap).sender == keys.pubkey_hex
