"""orjson writes the audit's JSON only where its text is the ``json`` encoder's: the NIP-01 id of
an event whose types the quick pass checked, and the canonical form of a content holding no
float; whatever orjson refuses or writes its own way (lone surrogates, integers beyond 64 bits,
floats, NaN) is written by the ``json`` encoder, so every verdict and finding is the same."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from coincurve import PrivateKey
from hypothesis import example, given
from hypothesis import strategies as st
from support.audit_logs import Draft, RealLog, build_real_log, canonical_json, tag
from support.stacks import Stack

from taskhold.audit import FindingKind, Verdict, audit_log, nip01, verify_event
from taskhold.audit.nip01 import event_id, parse_json, parse_json_noting_floats

TRICKY = '\x00\x01\x1f\x7f"\\\b\t\n\f\r/\u2028\u2029é\u00a0\ufeff😀\ud800\udfff'
"""Characters whose escaping differs between JSON encoders, and two lone surrogates."""

texts = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(exclude_categories=())),  # surrogates too
    st.text(alphabet=st.sampled_from(TRICKY)),
)
integers = st.one_of(
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=2**63 - 3, max_value=2**64 + 3),
    st.integers(min_value=0),
)


def stdlib_compact(value: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


def outcome(compute: Callable[[], object]) -> object:
    """What ``compute`` returns, or the type of what it raises."""
    try:
        return compute()
    except Exception as error:  # the type is what is compared
        return type(error)


@pytest.fixture
def orjson_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The values orjson wrote without refusing them (so a test shows the quick path ran)."""
    written: list[object] = []

    def counting(value: Any, option: int | None = None) -> bytes:
        text = orjson.dumps(value, option=option)
        written.append(value)
        return text

    monkeypatch.setattr(nip01, "_orjson_dumps", counting)
    return written


@given(
    pubkey=texts, created_at=integers, kind=st.integers(0, 0xFFFF), content=texts,
    tags=st.lists(st.lists(texts, min_size=1, max_size=4), max_size=4),
)  # fmt: skip
@example(pubkey="a", created_at=2**64, kind=1, tags=[], content="")
@example(pubkey="a", created_at=1, kind=1, tags=[["x", "\ud800"]], content=TRICKY[:-2])
def test_the_id_is_sha256_of_the_json_encoders_text(
    pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str
) -> None:
    def by_json() -> bytes:
        serialized = stdlib_compact([0, pubkey, created_at, kind, tags, content])
        return hashlib.sha256(serialized.encode()).digest()

    fields = (pubkey, created_at, kind, tags, content)
    assert outcome(lambda: nip01._id_digest(*fields)) == outcome(by_json)


def test_orjson_writes_the_id_of_a_plain_event(orjson_calls: list[object]) -> None:
    tags = [["t", TRICKY[:-2]], ["é", "😀"]]
    event = {"pubkey": "ab" * 32, "created_at": 17, "kind": 1, "tags": tags, "content": "é\n"}
    assert nip01._id_digest("ab" * 32, 17, 1, tags, "é\n") == event_id(event)
    assert len(orjson_calls) == 1


def signed_as_given(**fields: Any) -> dict[str, Any]:
    """An event signed over the ``json`` encoder's text of whatever its fields hold."""
    secret = PrivateKey()
    event = {"pubkey": secret.public_key_xonly.format().hex(), "created_at": 17, "kind": 1}
    event.update({"tags": [["t", "x"]], "content": "c", **fields})
    digest = event_id(event)
    return {**event, "id": digest.hex(), "sig": secret.sign_schnorr(digest).hex()}


@pytest.mark.parametrize(
    "fields",
    [
        {"content": TRICKY[:-2]},
        {"tags": [["t", TRICKY[:-2]], ["é", "😀"]]},
        {"created_at": 2**64 - 1},
        {"created_at": 2**64},
        {"created_at": 2**100},
    ],
    ids=["content", "tags", "created_at 2**64-1", "created_at 2**64", "created_at 2**100"],
)
def test_events_orjson_writes_or_refuses_verify_as_before(fields: dict[str, Any]) -> None:
    event = signed_as_given(**fields)
    assert verify_event(event) is Verdict.OK
    assert verify_event({**event, "content": event["content"] + " "}) is Verdict.BAD_ID


def test_a_lone_surrogate_fails_as_the_json_encoder_makes_it_fail() -> None:
    event = signed_as_given()
    forged = {**event, "content": "\ud800"}
    assert outcome(lambda: verify_event(forged)) is outcome(lambda: event_id(forged))
    assert outcome(lambda: verify_event(forged)) is UnicodeEncodeError


json_values = st.recursive(
    st.none() | st.booleans() | integers | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def holds_a_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, list):
        return any(holds_a_float(item) for item in value)
    if isinstance(value, dict):
        return any(holds_a_float(item) for item in value.values())
    return False


def same_json(left: Any, right: Any) -> bool:
    """Equal, NaN counted equal to itself (compared through the ``json`` encoder's text)."""
    return stdlib_compact(left) == stdlib_compact(right)


@given(value=json_values, orjson_text=st.booleans())
@example(value={"x": 1e16, "y": [1e-07, 0.5]}, orjson_text=True)
@example(value={"x": 1e16}, orjson_text=False)
@example(value=[float("nan"), float("inf")], orjson_text=False)
@example(value={"b": 2**64, "a": "\ud800"}, orjson_text=False)
@example(value={"é": 1, "e": 2, "😀": 3, "\uffff": 4, "": 5}, orjson_text=True)
def test_the_canonical_text_is_the_json_encoders(value: Any, orjson_text: bool) -> None:
    """Parsed from the text either encoder writes (orjson's differs only for floats), the value
    and its float-freedom are read as ``json.loads`` reads it, and its canonical text is the
    ``json`` encoder's, canonical or not."""
    text = stdlib_compact(value, sort_keys=True)
    if orjson_text:
        with contextlib.suppress(orjson.JSONEncodeError):  # then the json encoder's text
            text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    parsed, floatless = parse_json_noting_floats(text)
    assert same_json(parsed, json.loads(text))
    assert floatless is not holds_a_float(parsed)
    canonical = nip01.canonical_json(parsed, floatless=floatless)
    assert canonical == stdlib_compact(parsed, sort_keys=True)
    assert (canonical == text) is (stdlib_compact(parsed, sort_keys=True) == text)


def test_orjson_writes_the_canonical_text_of_a_float_free_content(
    orjson_calls: list[object],
) -> None:
    text = canonical_json({"event": {"type": "T", "note": TRICKY[:-2]}, "request": None, "v": 1})
    parsed, floatless = parse_json_noting_floats(text)
    assert floatless
    assert nip01.canonical_json(parsed, floatless=floatless) == text
    assert orjson_calls == [parsed]


@pytest.mark.parametrize(
    "text", [" 1", "1 ", "1.5", "[1e400]", '{"a":[0.0]}', "NaN", "-Infinity", "1", '"\\ud800"']
)
def test_floats_are_noted_as_json_loads_reads_them(text: str) -> None:
    parsed, floatless = parse_json_noting_floats(text)
    assert same_json(parsed, parse_json(text))
    assert floatless is (text in ("1", '"\\ud800"'))


def with_content_event(field: str, literal: str) -> Callable[[Draft], None]:
    """Add ``field`` to the content's event, its value written as ``literal`` exactly."""

    def change(draft: Draft) -> None:
        body = json.loads(draft.content)
        body["event"][field] = "@"
        draft.content = canonical_json(body).replace('"@"', literal, 1)

    return change


def with_tag(value: str) -> Callable[[Draft], None]:
    def change(draft: Draft) -> None:
        draft.tags.append(["note", value])

    return change


@pytest.fixture
async def real_log(stack: Stack) -> RealLog:
    return await build_real_log(stack)


CONTENT_CASES: list[tuple[Callable[[Draft], None], bool]] = [
    (with_content_event("note", json.dumps(TRICKY[:-2], ensure_ascii=False)), True),
    (with_content_event("note", json.dumps("é😀")), False),  # \\u escapes: not canonical
    (with_content_event("x", "1e16"), False),  # orjson's text, not the json encoder's
    (with_content_event("x", "1e+16"), True),
    (with_content_event("x", "[1.0,0.1,1e-07]"), True),
    (with_content_event("x", "NaN"), True),
    (with_content_event("x", str(2**70)), True),
    (with_content_event("x", str(2**64 - 1)), True),
    (with_tag(TRICKY[:-2]), True),
]


async def test_the_findings_are_those_of_the_json_encoder_alone(
    real_log: RealLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries whose content or tags orjson writes, writes its own way, or refuses: the same
    findings as an audit in which orjson refuses everything, and a content is reported not
    canonical exactly when the json encoder writes it otherwise."""
    gseq = int(tag(real_log.entry("TaskCreated"), "gseq") or "")

    def refuse(value: Any, option: int | None = None) -> bytes:
        raise orjson.JSONEncodeError("refused")

    for change, canonical in CONTENT_CASES:
        entries = real_log.resigned(gseq, change)
        findings = audit_log(entries, real_log.operator).findings
        with monkeypatch.context() as patched:
            patched.setattr(nip01, "_orjson_dumps", refuse)
            assert audit_log(entries, real_log.operator).findings == findings
        not_canonical = [
            f for f in findings
            if f.kind is FindingKind.MALFORMED and "content is not canonical JSON" in f.detail
        ]  # fmt: skip
        assert bool(not_canonical) is not canonical, [f.to_json() for f in findings]
        assert not_canonical or not [f for f in findings if f.location.gseq == gseq]
