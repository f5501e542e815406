"""The audit's quick paths skip no check: an event the one-pass verification does not accept is
judged the long way (shape, then id, then signature) with the same verdict, and an otherwise
valid entry with one ill-formed hex field is reported on one process and spread over two."""

from __future__ import annotations

import json
import re
from collections import UserDict
from collections.abc import Callable
from typing import Any

import pytest
from coincurve import PrivateKey, PublicKeyXOnly
from support.audit_logs import Draft, RealLog, build_real_log, canonical_json, tag
from support.stacks import Stack

from taskhold.audit import FindingKind, Verdict, audit_log, parallel, verify_event
from taskhold.audit import entry as entry_module
from taskhold.audit.nip01 import event_id, is_hex64, parse_json, shape_error
from taskhold.nostr import NostrKeys


def long_way(event: Any) -> Verdict:
    """The verdict as the NIP text reads, with nothing cached and nothing skipped."""
    if shape_error(event) is not None:
        return Verdict.MALFORMED
    digest = event_id(event)
    if digest.hex() != event["id"]:
        return Verdict.BAD_ID
    key = PublicKeyXOnly(bytes.fromhex(event["pubkey"]))
    ok = key.verify(bytes.fromhex(event["sig"]), digest)
    return Verdict.OK if ok else Verdict.BAD_SIGNATURE


class Text(str):
    """A string that is not exactly a str."""


def _flip(hex_text: str) -> str:
    return hex_text[:-1] + ("0" if hex_text[-1] != "0" else "1")


VARIANTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "as signed": lambda e: e,
    "id upper case": lambda e: {**e, "id": e["id"].upper()},
    "id one bit off": lambda e: {**e, "id": _flip(e["id"])},
    "id 63 characters": lambda e: {**e, "id": e["id"][:-1]},
    "id not a string": lambda e: {**e, "id": 7},
    "pubkey upper case": lambda e: {**e, "pubkey": e["pubkey"].upper()},
    "pubkey with a space": lambda e: {**e, "pubkey": " " + e["pubkey"][1:]},
    "pubkey a list": lambda e: {**e, "pubkey": [e["pubkey"]]},
    "pubkey a str subclass": lambda e: {**e, "pubkey": Text(e["pubkey"])},
    "sig upper case": lambda e: {**e, "sig": e["sig"].upper()},
    "sig one bit off": lambda e: {**e, "sig": _flip(e["sig"])},
    "sig with a space": lambda e: {**e, "sig": e["sig"][:2] + " " + e["sig"][3:]},
    "created_at a bool": lambda e: {**e, "created_at": True},
    "created_at a float": lambda e: {**e, "created_at": float(e["created_at"])},
    "created_at negative": lambda e: {**e, "created_at": -1},
    "kind too large": lambda e: {**e, "kind": 70_000},
    "content bytes": lambda e: {**e, "content": e["content"].encode()},
    "tags a tuple": lambda e: {**e, "tags": tuple(e["tags"])},
    "a tag a tuple": lambda e: {**e, "tags": [tuple(t) for t in e["tags"]]},
    "an empty tag": lambda e: {**e, "tags": [*e["tags"], []]},
    "a tag value an int": lambda e: {**e, "tags": [*e["tags"], ["n", 1]]},
    "a tag value a str subclass": lambda e: {**e, "tags": [[t[0], Text(t[1])] for t in e["tags"]]},
    "no sig": lambda e: {k: v for k, v in e.items() if k != "sig"},
    "a mapping, not a dict": lambda e: UserDict(e),
    "a list": lambda e: [e],
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_verdict_is_the_long_ways(variant: str) -> None:
    keys = NostrKeys.generate()
    signed = keys.sign_event(3910, '{"a":"é \\" \\n"}', [["op", "x"], ["p", "ab", "c"]], 17)
    assert verify_event(signed) is Verdict.OK  # the key is now known to the quick pass
    event = VARIANTS[variant](signed)
    assert verify_event(event) is long_way(event)
    still_ok = ("as signed", "pubkey a str subclass", "a mapping, not a dict")
    assert (verify_event(event) is Verdict.OK) == (variant in still_ok)


def signed_as_given(secret: PrivateKey, **fields: Any) -> dict[str, Any]:
    """An event whose id and signature are right for whatever its fields hold (the id over
    their JSON text): only its shape can refuse it."""
    pubkey = secret.public_key_xonly.format().hex()
    event = {"pubkey": pubkey, "created_at": 17, "kind": 3910, "tags": [["op", "x"]]}
    event.update({"content": "c", **fields})
    digest = event_id(event)
    return {**event, "id": digest.hex(), "sig": secret.sign_schnorr(digest).hex()}


ILL_SHAPED: dict[str, dict[str, Any]] = {
    "a tag value an int": {"tags": [["op", "x"], ["n", 1]]},
    "a tag value null": {"tags": [["op", None]]},
    "a tag a tuple": {"tags": [("op", "x")]},
    "tags a tuple": {"tags": (["op", "x"],)},
    "an empty tag": {"tags": [["op", "x"], []]},
    "a tag value a str subclass": {"tags": [["op", Text("x")]]},
    "created_at a float": {"created_at": 17.0},
    "created_at a bool": {"created_at": True},
    "created_at negative": {"created_at": -1},
    "kind a bool": {"kind": True},
    "kind too large": {"kind": 70_000},
    "content a str subclass": {"content": Text("c")},
}


@pytest.mark.parametrize("variant", ILL_SHAPED)
def test_an_ill_shaped_event_whose_id_and_signature_verify_is_malformed(variant: str) -> None:
    secret = PrivateKey()
    assert verify_event(signed_as_given(secret)) is Verdict.OK
    event = signed_as_given(secret, **ILL_SHAPED[variant])
    assert verify_event(event) is long_way(event)
    expected = Verdict.OK if variant == "content a str subclass" else Verdict.MALFORMED
    assert verify_event(event) is expected


def test_a_tampered_field_is_not_accepted_by_the_quick_pass() -> None:
    keys = NostrKeys.generate()
    signed = keys.sign_event(3910, "x", [["op", "x"]], 17)
    for name, value in (("content", "y"), ("created_at", 18), ("kind", 3911), ("tags", [])):
        assert verify_event({**signed, name: value}) is Verdict.BAD_ID, name


@pytest.fixture
async def real_log(stack: Stack) -> RealLog:
    return await build_real_log(stack)


def _upper_state(draft: Draft) -> None:
    draft.set_tag("state", tag_value(draft, "state").upper())


def tag_value(draft: Draft, name: str) -> str:
    return next(t[1] for t in draft.tags if t[0] == name)


def _request_id_upper(draft: Draft) -> None:
    body = json.loads(draft.content)
    body["request"]["id"] = body["request"]["id"].upper()
    draft.content = canonical_json(body)


def _preimage_with_a_space(draft: Draft) -> None:
    draft.set_tag("preimage", " " + tag_value(draft, "preimage")[1:])


def _stray_txid(draft: Draft) -> None:
    draft.tags.append(["lockup_txid", "AB" * 32])


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
async def test_an_ill_formed_hex_field_is_reported_on_one_process_and_on_two(
    real_log: RealLog, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    monkeypatch.setattr(parallel, "MIN_EVENTS_PER_JOB", 1)
    monkeypatch.setattr(parallel, "_may_fork", lambda: fork)
    claimed = tag(real_log.entry("TaskClaimed"), "gseq")
    released = tag(real_log.entry("ReleaseCompleted"), "gseq")
    cases: list[tuple[int, Callable[[Draft], None], FindingKind, str]] = [
        (5, _upper_state, FindingKind.MALFORMED, "ill-formed tags: state"),
        (int(claimed), _request_id_upper, FindingKind.BAD_EMBEDDED_REQUEST, "malformed"),
        (int(released), _preimage_with_a_space, FindingKind.MALFORMED, "preimage"),
        (int(claimed), _stray_txid, FindingKind.MALFORMED, "lockup_txid (not allowed on"),
    ]
    for gseq, change, kind, words in cases:
        entries = real_log.resigned(gseq, change)
        serial = audit_log(entries, real_log.operator)
        spread = audit_log(entries, real_log.operator, jobs=2)
        assert spread.findings == serial.findings
        found = [f for f in serial.findings if f.kind is kind and f.location.gseq == gseq]
        assert found and words in found[0].detail, [f.to_json() for f in serial.findings]
        if change is _stray_txid:  # and its value, not 64 lowercase hex, is reported too
            assert found[0].detail.endswith("; lockup_txid"), found[0].detail


HEX_TEXTS: list[object] = [
    "ab" * 32, "AB" * 32, "ab" * 31 + "aB", " " + "a" * 63, "a" * 63 + "\n", "a" * 63,
    "a" * 65, "0x" + "a" * 62, "+" + "1" * 63, "\u0660" * 64, "g" * 64, "", None, 7,
    b"ab" * 32, Text("cd" * 32), ["ab" * 32],
]  # fmt: skip


@pytest.mark.parametrize("value", HEX_TEXTS, ids=range(len(HEX_TEXTS)))
def test_is_hex64_reads_as_the_regular_expression_does(value: object) -> None:
    by_regex = isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None
    assert is_hex64(value) is by_regex


JSON_TEXTS = [
    '{"event":{"a":1},"request":null,"v":1}', ' {"v":1}', '{"v":1}\n', '{"v":1} x', "",
    "NaN", "\ufeff{}", '"\\ud800"', "[1,2", "1e400", '{"a":1,"a":2}', "  ", "[]]",
]  # fmt: skip


@pytest.mark.parametrize("text", JSON_TEXTS, ids=range(len(JSON_TEXTS)))
def test_parse_json_reads_as_json_loads_does(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError as error:
        with pytest.raises(ValueError) as raised:
            parse_json(text)
        assert type(raised.value) is type(error)
        return
    assert parse_json(text) == expected or (expected != expected)  # NaN is not itself


@pytest.mark.parametrize("text", ["0", "7", "10", "01", "", "-1", "1.0", "\u0661", "²", " 1"])
def test_uint_reads_as_the_regular_expression_does(text: str) -> None:
    assert entry_module._uint(text) is (re.fullmatch(r"0|[1-9][0-9]*", text) is not None)
