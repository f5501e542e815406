"""NostrKeys: parsing, secrecy, signing; verify_event: tampering and malformed input."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from taskhold.nostr import KIND_LOG_ENTRY, KIND_PROOF, KIND_REQUEST, NostrKeys, verify_event

CREATED_AT = 1_760_000_000


@pytest.fixture
def keys() -> NostrKeys:
    return NostrKeys.generate()


@pytest.fixture
def event(keys: NostrKeys) -> dict[str, Any]:
    return keys.sign_event(
        KIND_REQUEST, '{"reason":"late"}', [["op", "cancel"], ["task", "t-1"]], CREATED_AT
    )


def test_default_kinds() -> None:
    assert (KIND_LOG_ENTRY, KIND_PROOF, KIND_REQUEST) == (3910, 3911, 3912)


def test_secret_round_trips_through_hex_and_nsec(keys: NostrKeys) -> None:
    secret = keys.secret_hex_unsafe()

    assert len(secret) == 64
    assert NostrKeys.from_secret_hex(secret).pubkey_hex == keys.pubkey_hex
    assert NostrKeys.parse(secret).pubkey_hex == keys.pubkey_hex
    assert NostrKeys.parse(f"  {secret}\n").pubkey_hex == keys.pubkey_hex


def test_public_key_forms(keys: NostrKeys) -> None:
    assert len(keys.pubkey_hex) == 64 and keys.pubkey_hex == keys.pubkey_hex.lower()
    assert keys.npub.startswith("npub1")
    assert NostrKeys.generate().pubkey_hex != keys.pubkey_hex


def test_repr_and_str_never_show_the_secret(keys: NostrKeys) -> None:
    secret = keys.secret_hex_unsafe()

    for text in (repr(keys), str(keys), f"{keys}", repr([keys])):
        assert secret not in text
        assert keys.npub in text


@pytest.mark.parametrize("bad", ["", "zz", "00" * 31, "0" * 64, "nsec1notvalid", "g" * 64])
def test_bad_secrets_are_refused_without_echoing_them(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        NostrKeys.parse(bad) if bad.startswith("nsec") else NostrKeys.from_secret_hex(bad)

    if bad:
        assert bad not in str(info.value)


@pytest.mark.parametrize(
    ("kind", "tags", "created_at"),
    [(-1, [], CREATED_AT), (70_000, [], CREATED_AT), (1, [[]], CREATED_AT), (1, [], -5)],
)
def test_sign_event_refuses_impossible_events(
    keys: NostrKeys, kind: int, tags: list[list[str]], created_at: int
) -> None:
    with pytest.raises(ValueError):
        keys.sign_event(kind, "x", tags, created_at)


def test_sign_event_refuses_lone_surrogates(keys: NostrKeys) -> None:
    with pytest.raises(ValueError):
        keys.sign_event(KIND_REQUEST, "a\ud800", [], CREATED_AT)
    with pytest.raises(ValueError):
        keys.sign_event(KIND_REQUEST, "a", [["x", "\udfff"]], CREATED_AT)


def test_signed_event_verifies(event: dict[str, Any]) -> None:
    assert verify_event(event)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda e: e.update(content='{"reason":"early"}'), id="content"),
        pytest.param(lambda e: e["tags"][1].__setitem__(1, "t-2"), id="tag value"),
        pytest.param(lambda e: e["tags"].append(["extra", "1"]), id="tag added"),
        pytest.param(lambda e: e.update(created_at=e["created_at"] + 1), id="created_at"),
        pytest.param(lambda e: e.update(kind=KIND_PROOF), id="kind"),
        pytest.param(lambda e: e.update(pubkey=NostrKeys.generate().pubkey_hex), id="pubkey"),
        pytest.param(lambda e: e.update(sig=_flip(e["sig"])), id="sig"),
        pytest.param(lambda e: e.update(id=_flip(e["id"])), id="id"),
        pytest.param(lambda e: e.update(id=e["id"].upper()), id="upper-case id"),
    ],
)
def test_tampered_events_fail(event: dict[str, Any], tamper: Any) -> None:
    tampered = copy.deepcopy(event)
    tamper(tampered)

    assert not verify_event(tampered)


def test_signature_from_another_event_fails(keys: NostrKeys, event: dict[str, Any]) -> None:
    other = keys.sign_event(KIND_REQUEST, "{}", [["op", "approve"]], CREATED_AT)

    assert not verify_event({**event, "sig": other["sig"]})
    assert not verify_event({**other, "id": event["id"], "sig": event["sig"]})


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "not an event",
        [],
        {},
        {"id": "x"},
        pytest.param("drop-sig", id="missing sig"),
        pytest.param("created_at-str", id="created_at as string"),
        pytest.param("created_at-float", id="created_at as float"),
        pytest.param("kind-bool", id="kind as bool"),
        pytest.param("tags-str", id="tags as string"),
        pytest.param("empty-tag", id="empty tag"),
        pytest.param("content-int", id="content as int"),
        pytest.param("nan", id="NaN created_at"),
        pytest.param("surrogate", id="lone surrogate in content"),
    ],
)
def test_malformed_input_is_false_not_an_exception(event: dict[str, Any], bad: object) -> None:
    mutations: dict[str, dict[str, Any]] = {
        "created_at-str": {"created_at": str(CREATED_AT)},
        "created_at-float": {"created_at": float(CREATED_AT)},
        "kind-bool": {"kind": True},
        "tags-str": {"tags": "op"},
        "empty-tag": {"tags": [[]]},
        "content-int": {"content": 5},
        "nan": {"created_at": float("nan")},
        "surrogate": {"content": "\ud800"},
    }
    if bad == "drop-sig":
        bad = {k: v for k, v in event.items() if k != "sig"}
    elif isinstance(bad, str) and bad in mutations:
        bad = {**event, **mutations[bad]}

    assert verify_event(bad) is False


def _flip(hex_text: str) -> str:
    return ("1" if hex_text[0] == "0" else "0") + hex_text[1:]
