"""Events from NostrKeys verify with an independent NIP-01 implementation, and vice versa.

The independent side is written here on coincurve from the NIP-01 text, sharing no code with
taskhold, so a serialisation bug in either cannot hide behind the other.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest
from coincurve import PrivateKey, PublicKeyXOnly
from hypothesis import given, settings
from hypothesis import strategies as st

from taskhold.nostr import KIND_PROOF, KIND_REQUEST, NostrKeys, verify_event

CREATED_AT = 1_760_000_000


def nip01_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> bytes:
    serialized = json.dumps(
        [0, pubkey, created_at, kind, tags, content], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(serialized.encode()).digest()


def independent_verify(event: dict[str, Any]) -> bool:
    event_id = nip01_id(
        event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]
    )
    if event_id.hex() != event["id"]:
        return False
    pubkey = PublicKeyXOnly(bytes.fromhex(event["pubkey"]))
    return bool(pubkey.verify(bytes.fromhex(event["sig"]), event_id))


def independent_sign(
    secret: bytes, kind: int, content: str, tags: list[list[str]], created_at: int
) -> dict[str, Any]:
    pubkey = PublicKeyXOnly.from_secret(secret).format().hex()
    event_id = nip01_id(pubkey, created_at, kind, tags, content)
    sig = PrivateKey(secret).sign_schnorr(event_id, os.urandom(32))
    return {
        "id": event_id.hex(),
        "pubkey": pubkey,
        "created_at": created_at,
        "kind": kind,
        "tags": tags,
        "content": content,
        "sig": sig.hex(),
    }


TRICKY_CONTENT = [
    "",
    "plain",
    'quotes " and \\ backslash',
    "new\nline\ttab\r",
    "é ü ß 中文 🚀",
    "line separator \u2028 and \u2029",
    "control \x01 and nul \x00 and del \x7f",
    '{"title":"naïve \\"quoted\\"","amount_msat":1000}',
]


@pytest.mark.parametrize("content", TRICKY_CONTENT)
def test_nostr_keys_events_verify_independently(content: str) -> None:
    keys = NostrKeys.generate()
    tags = [["op", "create"], ["task", "t-1"], ["note", 'é "q"\n']]
    event = keys.sign_event(KIND_REQUEST, content, tags, CREATED_AT)

    assert set(event) == {"id", "pubkey", "created_at", "kind", "tags", "content", "sig"}
    assert event["pubkey"] == keys.pubkey_hex
    assert (event["kind"], event["created_at"], event["tags"], event["content"]) == (
        KIND_REQUEST,
        CREATED_AT,
        tags,
        content,
    )
    assert independent_verify(event)
    assert verify_event(event)


@pytest.mark.parametrize("content", TRICKY_CONTENT)
def test_independently_signed_events_verify(content: str) -> None:
    secret = os.urandom(32)
    event = independent_sign(secret, KIND_PROOF, content, [["op", "proof"]], CREATED_AT)

    assert verify_event(event)
    assert NostrKeys.from_secret_hex(secret.hex()).pubkey_hex == event["pubkey"]


def test_event_survives_a_json_round_trip() -> None:
    event = NostrKeys.generate().sign_event(KIND_REQUEST, 'é\n"🚀"', [["op", "x"]], CREATED_AT)

    wire = json.loads(json.dumps(event))

    assert wire == event
    assert verify_event(wire)
    assert independent_verify(wire)


@settings(max_examples=40, deadline=None)
@given(
    content=st.text(max_size=200),
    tag_values=st.lists(st.text(max_size=20), max_size=3),
)
def test_any_text_round_trips_both_ways(content: str, tag_values: list[str]) -> None:
    tags = [["op", "any"], ["x", *tag_values]]
    ours = NostrKeys.generate().sign_event(KIND_REQUEST, content, tags, CREATED_AT)
    theirs = independent_sign(os.urandom(32), KIND_REQUEST, content, tags, CREATED_AT)

    assert ours["content"] == content and ours["tags"] == tags
    assert independent_verify(ours)
    assert verify_event(theirs)
