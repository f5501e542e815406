"""``RemoteSigner`` against a real NIP-46 bunker (``support.nip46_bunker``) on the embedded relay:
signs as the user key the bunker names, mines NIP-13 work before asking for the signature, and
refuses an answer signed by another key or for another event."""

from __future__ import annotations

import json

import pytest
from support.nip46_bunker import Behaviour, Bunker

from taskhold.nostr import NostrKeys, verify_event
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.pow import pow_bits
from taskhold.nostr.remote_signer import BunkerAddress, RemoteSignerError, remote_signer


async def signed_by(relay: EmbeddedRelay, behaviour: Behaviour, difficulty: int = 0) -> dict:
    bunker = Bunker(relay.url, NostrKeys.generate(), behaviour=behaviour)
    await bunker.start()
    try:
        async with remote_signer(BunkerAddress.parse(bunker.uri), timeout_s=10) as signer:
            assert signer.pubkey_hex == bunker.user.pubkey_hex != bunker.signer_pubkey
            tags = [["op", "create"], ["key", "k1"]]
            return await signer.sign_event(
                3910, json.dumps({"a": 1}), tags, 1_700_000_000, difficulty
            )
    finally:
        await bunker.stop()


async def test_the_bunker_signs_the_event_asked_for_as_the_user(relay: EmbeddedRelay) -> None:
    event = await signed_by(relay, "sign")
    assert verify_event(event)
    assert (event["kind"], event["created_at"], event["content"]) == (
        3910,
        1_700_000_000,
        '{"a": 1}',
    )
    assert event["tags"] == [["op", "create"], ["key", "k1"]]


async def test_proof_of_work_is_mined_before_the_bunker_signs(relay: EmbeddedRelay) -> None:
    event = await signed_by(relay, "sign", difficulty=8)
    assert verify_event(event)
    assert pow_bits(event["id"]) >= 8
    assert [tag[0] for tag in event["tags"]] == ["op", "key", "nonce"]


@pytest.mark.parametrize(
    ("behaviour", "says"),
    [("wrong_key", "signed by"), ("tamper", "another event than the one asked for")],
)
async def test_a_wrong_answer_is_refused(
    relay: EmbeddedRelay, behaviour: Behaviour, says: str
) -> None:
    with pytest.raises(RemoteSignerError, match=says):
        await signed_by(relay, behaviour)
