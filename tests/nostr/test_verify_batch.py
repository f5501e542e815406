"""``verify_events`` (a rebuild's batch check) and ``verify_event`` (a request's) check on
libsecp256k1 first and answer what nostr-sdk answers, on good events and on every way an event
can be wrong."""

from __future__ import annotations

from typing import Any

import pytest

from taskhold.nostr import NostrKeys, verify, verify_event
from taskhold.nostr.verify import verify_events


def _variants() -> list[Any]:
    keys, other = NostrKeys.generate(), NostrKeys.generate()
    content = 'é "q" \\ \n\u2028 🎉'
    good = keys.sign_event(3910, content, [["op", "x"], ["t", "\x01"]], 1_760_000_000)
    sig = good["sig"]
    return [
        good,
        keys.sign_event(3912, "", [], 0),
        {**good, "content": good["content"] + "!"},
        {**good, "sig": sig[:-1] + ("0" if sig[-1] != "0" else "1")},
        {**good, "sig": other.sign_event(3910, "x", [], 1)["sig"]},
        {**good, "pubkey": other.pubkey_hex},
        {**good, "id": good["id"].upper()},
        {**good, "created_at": True},
        {**good, "created_at": -1},
        {**good, "created_at": 1.5},
        {**good, "kind": 70_000},
        {**good, "tags": [["op", 1]]},
        {**good, "tags": [[]]},
        {**good, "tags": "op"},
        {**good, "content": None},
        {**good, "pubkey": "ff" * 32},
        {k: v for k, v in good.items() if k != "sig"},
        [good],
        None,
        "event",
    ]


def test_the_batch_agrees_with_verify_event_on_every_variant() -> None:
    events = _variants()
    expected = [verify_event(event) for event in events]
    assert expected[:2] == [True, True] and not any(expected[2:])
    assert verify_events(events) == expected


def test_the_fast_check_and_nostr_sdk_agree_on_every_variant() -> None:
    events = _variants()
    through_sdk = [verify._verifies_through_sdk(event) for event in events]
    assert through_sdk[:2] == [True, True] and not any(through_sdk[2:])
    assert [verify_event(event) for event in events] == through_sdk
    assert [verify._verifies_fast(event) for event in events] == through_sdk


def test_spread_over_processes_the_answers_are_the_same_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = _variants() * 3
    monkeypatch.setattr(verify, "MIN_EVENTS_PER_JOB", 1)  # cut even a short batch in chunks
    assert verify_events(events, jobs=3) == [verify_event(event) for event in events]


_HARD_TEXTS = [
    'é "q" \\ \n\u2028\u2029 🎉 漢字 \ufeff </script>',
    "".join(map(chr, range(0x20))) + "\x7f",
    "",
]


@pytest.mark.parametrize("text", _HARD_TEXTS)
def test_the_fast_path_hashes_the_text_json_writes(text: str) -> None:
    """orjson's serialisation (the batch's fast path) is ``nip01_id``'s byte for byte, so a good
    event verifies there without the slow path; an integer beyond 64 bits takes the fallback."""
    keys = NostrKeys.generate()
    good = keys.sign_event(3910, text, [["op", text], ["t", "x", text]], 1_760_000_000)
    assert verify._verifies_fast(good)
    fields = [good["pubkey"], good["created_at"], good["kind"], good["tags"], good["content"]]
    for created_at in (good["created_at"], 2**70):
        fields[1] = created_at
        names = ("pubkey", "created_at", "kind", "tags", "content")
        event = dict(zip(names, fields, strict=True))
        assert verify._id_digest([0, *fields]).hex() == verify.nip01_id(event)
