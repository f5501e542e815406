"""Confidential payloads: sealed per recipient with NIP-44 v2, committed to by their hash."""

from __future__ import annotations

import hashlib
import json

import pytest

from taskhold.nostr import NostrKeys
from taskhold.nostr.confidential import (
    SealedContentError,
    check_disclosure,
    commitment,
    make_payload,
    open_sealed,
    payload_body,
    seal,
)


def test_a_payload_is_canonical_json_of_a_salt_and_the_body() -> None:
    payload = make_payload({"description": "ünïcode & more"})
    parsed = json.loads(payload)
    assert set(parsed) == {"salt", "body"}
    assert len(parsed["salt"]) == 64
    assert payload_body(payload) == {"description": "ünïcode & more"}
    assert commitment(payload) == hashlib.sha256(payload.encode("utf-8")).hexdigest()
    assert make_payload("x") != make_payload("x"), "each payload gets a fresh salt"


def test_each_recipient_opens_its_own_copy_and_nobody_else_does() -> None:
    sender, alice, bob, eve = (NostrKeys.generate() for _ in range(4))
    payload = make_payload({"description": "secret"})
    copies = seal(sender, [alice.pubkey_hex, bob.pubkey_hex, alice.pubkey_hex], payload)
    assert set(copies) == {alice.pubkey_hex, bob.pubkey_hex}
    assert "secret" not in json.dumps(copies)
    assert open_sealed(alice, sender.pubkey_hex, copies[alice.pubkey_hex]) == payload
    assert open_sealed(bob, sender.pubkey_hex, copies[bob.pubkey_hex]) == payload
    with pytest.raises(SealedContentError):
        open_sealed(eve, sender.pubkey_hex, copies[alice.pubkey_hex])
    with pytest.raises(SealedContentError):
        open_sealed(alice, sender.pubkey_hex, "not a ciphertext")


def test_a_disclosure_checks_against_its_commitment_and_a_tampered_one_does_not() -> None:
    payload = make_payload({"description": "pay 5 sats"})
    committed = commitment(payload)
    assert check_disclosure(payload, committed)
    assert check_disclosure(payload, committed.upper())
    assert not check_disclosure(payload.replace("5", "9"), committed)


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[]",
        '{"body":"x"}',
        '{"body":"x","salt":"ab","extra":1}',
        '{"body":"x","salt":"' + "A" * 64 + '"}',
        '{"salt": "' + "a" * 64 + '", "body": "x"}',  # not canonical: spaces, key order
    ],
)
def test_a_malformed_payload_is_refused(payload: str) -> None:
    with pytest.raises(SealedContentError):
        payload_body(payload)
