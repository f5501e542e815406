"""Each envelope rule of verify_signed_request refuses with its stable code and status."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from taskhold.envelope import SignedRequest, verify_signed_request
from taskhold.errors import Forbidden, Invalid, Refusal, TooLarge
from taskhold.nostr import KIND_PROOF, KIND_REQUEST, NostrKeys

NOW = 1_760_000_000
WINDOW_S = 300
TASK_ID = "3f1c9e8a-5b7d-4c2e-9a10-0d6b2f4e8c11"
KINDS = frozenset({KIND_REQUEST})
KEYS = NostrKeys.generate()


def sign(
    *,
    op: str = "approve",
    task_id: str | None = TASK_ID,
    content: str = "{}",
    kind: int = KIND_REQUEST,
    created_at: int = NOW,
    tags: list[list[str]] | None = None,
) -> dict[str, Any]:
    if tags is None:
        tags = [["op", op]] + ([["task", task_id]] if task_id is not None else [])
    return KEYS.sign_event(kind, content, tags, created_at)


def check(
    raw: object,
    *,
    op: str = "approve",
    task_id: str | None = TASK_ID,
    kinds: frozenset[int] = KINDS,
    max_content_bytes: int = 64_000,
) -> SignedRequest:
    return verify_signed_request(
        raw,
        op=op,
        kinds=kinds,
        task_id=task_id,
        now=NOW,
        window_s=WINDOW_S,
        max_content_bytes=max_content_bytes,
    )


def refused(
    raw: object, code: str, status: int, kind: type[Refusal] = Invalid, **kwargs: Any
) -> Refusal:
    with pytest.raises(kind) as info:
        check(raw, **kwargs)
    assert (info.value.code, info.value.status) == (code, status)
    assert info.value.detail
    return info.value


def resigned_id(event: dict[str, Any]) -> str:
    """The id matching the event's fields, so only the signature is wrong."""
    fields = [
        0,
        event["pubkey"],
        event["created_at"],
        event["kind"],
        event["tags"],
        event["content"],
    ]
    return hashlib.sha256(
        json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


# Happy paths --------------------------------------------------------------------------------


def test_a_valid_request_is_accepted() -> None:
    event = sign(op="reject", content='{"reason":"the photo is blurry ✗"}', created_at=NOW - 299)

    request = check(event, op="reject")

    assert request == SignedRequest(
        event_id=event["id"],
        pubkey=KEYS.pubkey_hex,
        created_at=NOW - 299,
        kind=KIND_REQUEST,
        op="reject",
        task_id=TASK_ID,
        content={"reason": "the photo is blurry ✗"},
        raw=event,
    )


def test_create_needs_no_task_tag() -> None:
    event = sign(op="create", task_id=None, content='{"title":"t","amount_msat":1000}')

    request = check(event, op="create", task_id=None)

    assert request.task_id is None and request.content["amount_msat"] == 1000


def test_raw_is_a_copy_the_caller_cannot_change() -> None:
    event = sign()
    request = check(event)

    event["tags"][0][1] = "cancel"
    event["content"] = "changed"

    assert request.raw["tags"][0] == ["op", "approve"] and request.raw["content"] == "{}"


def test_other_tags_are_allowed() -> None:
    event = sign(tags=[["op", "approve"], ["task", TASK_ID], ["client", "taskhold-py"]])

    assert check(event).raw["tags"][2] == ["client", "taskhold-py"]


# malformed_event ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"id": "ab"}, id="short id"),
        pytest.param({"pubkey": 7}, id="pubkey not a string"),
        pytest.param({"sig": "zz" * 64}, id="sig not hex"),
        pytest.param({"created_at": "1760000000"}, id="created_at string"),
        pytest.param({"created_at": 1760000000.0}, id="created_at float"),
        pytest.param({"created_at": -1}, id="created_at negative"),
        pytest.param({"kind": True}, id="kind bool"),
        pytest.param({"kind": 70_000}, id="kind too big"),
        pytest.param({"tags": {"op": "approve"}}, id="tags object"),
        pytest.param({"tags": [["op", 1]]}, id="tag value not a string"),
        pytest.param({"tags": [[]]}, id="empty tag"),
        pytest.param({"tags": ["op"]}, id="tag not a list"),
        pytest.param({"content": {"reason": "x"}}, id="content object"),
        pytest.param({"content": '{"reason":"\ud800"}'}, id="lone surrogate in content"),
        pytest.param({"tags": [["op", "approve\udfff"]]}, id="lone surrogate in a tag"),
        pytest.param({"extra": 1}, id="unexpected field"),
    ],
)
def test_wrong_shapes_are_malformed(change: dict[str, Any]) -> None:
    refused({**sign(), **change}, "malformed_event", 422)


@pytest.mark.parametrize("raw", [None, "event", [1, 2], 42])
def test_non_objects_are_malformed(raw: object) -> None:
    refused(raw, "malformed_event", 422)


@pytest.mark.parametrize("field", ["id", "pubkey", "created_at", "kind", "tags", "content", "sig"])
def test_missing_fields_are_malformed(field: str) -> None:
    event = sign()
    del event[field]

    error = refused(event, "malformed_event", 422)

    assert field in error.detail


def test_upper_case_hex_is_malformed() -> None:
    """One spelling per event id: otherwise re-casing the id would slip past replay checks."""
    event = sign()

    refused({**event, "id": event["id"].upper()}, "malformed_event", 422)


@pytest.mark.parametrize("where", ["content", "tag"])
@pytest.mark.parametrize("char", ["\x00", "\x01", "\n", "\t", "\x1f"])
def test_control_characters_are_malformed(where: str, char: str) -> None:
    if where == "content":
        event = sign(content='{"reason":"a' + char + 'b"}')
    else:
        event = sign(tags=[["op", "approve"], ["task", TASK_ID], ["note", f"a{char}b"]])

    error = refused(event, "malformed_event", 422)

    assert "control characters" in error.detail


def test_escaped_control_characters_in_json_content_are_fine() -> None:
    event = sign(content=json.dumps({"reason": "line 1\nline 2\x01"}))

    assert check(event).content == {"reason": "line 1\nline 2\x01"}


# bad_signature ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda e: {**e, "content": '{"x":1}'}, id="content"),
        pytest.param(lambda e: {**e, "created_at": e["created_at"] + 1}, id="created_at"),
        pytest.param(lambda e: {**e, "tags": [["op", "cancel"], e["tags"][1]]}, id="tags"),
        pytest.param(lambda e: {**e, "pubkey": NostrKeys.generate().pubkey_hex}, id="pubkey"),
        pytest.param(lambda e: {**e, "sig": "0" * 128}, id="sig"),
        pytest.param(lambda e: {**e, "id": "0" * 64}, id="id"),
        pytest.param(
            lambda e: {**e, "content": '{"x":1}', "id": resigned_id({**e, "content": '{"x":1}'})},
            id="id recomputed, sig stale",
        ),
    ],
)
def test_tampered_events_have_a_bad_signature(change: Any) -> None:
    refused(change(sign()), "bad_signature", 401, Forbidden)


# wrong_kind -------------------------------------------------------------------------------------


def test_kind_outside_the_accepted_set() -> None:
    error = refused(sign(kind=1), "wrong_kind", 422)

    assert "3912" in error.detail


def test_proof_kind_is_accepted_where_configured() -> None:
    event = sign(op="proof", kind=KIND_PROOF, content='{"proof":{},"payout_invoice":"lnbc1"}')

    assert check(event, op="proof", kinds=frozenset({KIND_PROOF})).kind == KIND_PROOF
    refused(event, "wrong_kind", 422, op="proof")


# wrong_op ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param([["task", TASK_ID]], id="missing"),
        pytest.param([["op", "cancel"], ["task", TASK_ID]], id="other op"),
        pytest.param([["op", "approve"], ["op", "cancel"], ["task", TASK_ID]], id="two ops"),
        pytest.param([["op", "approve"], ["op", "approve"], ["task", TASK_ID]], id="op twice"),
        pytest.param([["op", "approve", "cancel"], ["task", TASK_ID]], id="extra value"),
        pytest.param([["op"], ["task", TASK_ID]], id="no value"),
        pytest.param([["OP", "approve"], ["task", TASK_ID]], id="upper-case name"),
    ],
)
def test_an_approval_is_not_a_cancel(tags: list[list[str]]) -> None:
    refused(sign(tags=tags), "wrong_op", 422)


def test_approve_signature_cannot_be_replayed_as_cancel() -> None:
    error = refused(sign(op="approve"), "wrong_op", 422, op="cancel")

    assert '["op", "cancel"]' in error.detail


# wrong_task --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param([["op", "approve"]], id="missing"),
        pytest.param([["op", "approve"], ["task", "another-task"]], id="other task"),
        pytest.param([["op", "approve"], ["task", TASK_ID.upper()]], id="other spelling"),
        pytest.param([["op", "approve"], ["task", TASK_ID, "x"]], id="extra value"),
        pytest.param(
            [["op", "approve"], ["task", TASK_ID], ["task", "another-task"]], id="two tasks"
        ),
    ],
)
def test_request_for_another_task(tags: list[list[str]]) -> None:
    refused(sign(tags=tags), "wrong_task", 422)


def test_create_must_not_name_a_task() -> None:
    event = sign(op="create", task_id=TASK_ID)

    refused(event, "wrong_task", 422, op="create", task_id=None)


# stale_request -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created_at", "words"),
    [(NOW - WINDOW_S - 1, "301 s in the past"), (NOW + WINDOW_S + 60, "360 s in the future")],
)
def test_created_at_outside_the_window(created_at: int, words: str) -> None:
    error = refused(sign(created_at=created_at), "stale_request", 422)

    assert words in error.detail and f"{WINDOW_S} s" in error.detail


@pytest.mark.parametrize("created_at", [NOW - WINDOW_S, NOW + WINDOW_S])
def test_window_edges_are_accepted(created_at: int) -> None:
    assert check(sign(created_at=created_at)).created_at == created_at


# too_large ---------------------------------------------------------------------------------------


def test_content_over_the_limit() -> None:
    content = json.dumps({"reason": "é" * 600})  # 2 bytes per character in UTF-8

    error = refused(sign(content=content), "too_large", 413, TooLarge, max_content_bytes=1000)

    assert "1000" in error.detail
    assert check(sign(content=content), max_content_bytes=len(content.encode())).content


def test_tags_over_the_limit() -> None:
    event = sign(tags=[["op", "approve"], ["task", TASK_ID], ["pad", "x" * 2000]])

    refused(event, "too_large", 413, TooLarge, max_content_bytes=1000)


def test_size_is_checked_before_the_signature() -> None:
    event = {**sign(content=json.dumps({"reason": "x" * 2000})), "sig": "0" * 128}

    refused(event, "too_large", 413, TooLarge, max_content_bytes=1000)


# malformed_content -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("", id="empty"),
        pytest.param("not json", id="not json"),
        pytest.param("[1,2]", id="array"),
        pytest.param('"text"', id="string"),
        pytest.param("null", id="null"),
        pytest.param('{"a":1,"a":2}', id="duplicate key"),
        pytest.param('{"amount_msat":NaN}', id="NaN"),
        pytest.param('{"amount_msat":Infinity}', id="Infinity"),
        pytest.param('{"a":' + "[" * 5000 + "]" * 5000 + "}", id="deeply nested"),
    ],
)
def test_content_must_be_a_json_object(content: str) -> None:
    refused(sign(content=content), "malformed_content", 422)
