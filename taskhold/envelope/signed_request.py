"""Checking the participant-signed Nostr event that every write to the API carries.

Everything here is about the envelope and needs no database: shape, signature, kind, the ``op`` and
``task`` tags that bind a signature to one operation on one task, the ``created_at`` window and the
content. Replay (event id already used) and idempotency are the caller's job, in the same DB
transaction as the write. The event passed here is later embedded whole in the public log, so it
is refused unless every byte an auditor will hash is unambiguous.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from taskhold.errors import Forbidden, Invalid, RefusalCode, TooLarge
from taskhold.nostr import verify_event

__all__ = ["SignedRequest", "verify_signed_request"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_CONTROL = re.compile(r"[\x00-\x1f]")
_FIELDS = frozenset({"id", "pubkey", "created_at", "kind", "tags", "content", "sig"})
_MAX_CREATED_AT = 2**63 - 1
_MAX_CONTENT_INT = 2**63 - 1
"""Integers in content fit a signed 64-bit column, and stay exact in every JSON reader."""


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request whose envelope checked out. ``raw`` is the whole event, as signed."""

    event_id: str
    pubkey: str
    created_at: int
    kind: int
    op: str
    task_id: str | None
    content: dict[str, Any]
    raw: dict[str, Any]


def verify_signed_request(
    raw: object,
    *,
    op: str,
    kinds: frozenset[int],
    task_id: str | None,
    now: int,
    window_s: int,
    max_content_bytes: int = 64_000,
) -> SignedRequest:
    """Check a signed request for ``op`` on ``task_id`` (None: a create) or raise a Refusal.

    Cheap checks run before the signature so an oversized or malformed event costs no Schnorr
    verification. Who may do ``op`` (employer, worker, arbiter) is decided by the state machine,
    not here.
    """
    event = _well_formed(raw)
    _within_limits(event, max_content_bytes)
    _unambiguous(event)
    if not verify_event(event):
        raise Forbidden(
            "the event's id or signature does not verify: sign the exact JSON you send "
            "(NIP-01) with the secret key of the pubkey in the event",
            code=RefusalCode.BAD_SIGNATURE,
            status=401,
        )
    if event["kind"] not in kinds:
        allowed = ", ".join(str(kind) for kind in sorted(kinds))
        raise Invalid(
            f"event kind {event['kind']} is not accepted for '{op}'; use kind {allowed}",
            code=RefusalCode.WRONG_KIND,
        )
    _check_op(event["tags"], op)
    _check_task(event["tags"], task_id)
    _check_fresh(event["created_at"], now, window_s)
    return SignedRequest(
        event_id=event["id"],
        pubkey=event["pubkey"],
        created_at=event["created_at"],
        kind=event["kind"],
        op=op,
        task_id=task_id,
        content=_content_object(event["content"]),
        raw=event,
    )


def _malformed(detail: str) -> NoReturn:
    raise Invalid(f"malformed Nostr event: {detail}", code=RefusalCode.MALFORMED_EVENT)


def _well_formed(raw: object) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        _malformed("expected a JSON object with id, pubkey, created_at, kind, tags, content, sig")
    keys = set(raw)
    if keys != _FIELDS:
        missing, extra = sorted(_FIELDS - keys), sorted(str(key) for key in keys - _FIELDS)
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unexpected {', '.join(extra)}"] if extra else []
        _malformed("; ".join(parts) + " (a NIP-01 event has exactly these seven fields)")
    event: dict[str, Any] = dict(raw)
    if not _is_hex(_HEX64, event["id"]):
        _malformed("id must be 64 lower-case hex characters")
    if not _is_hex(_HEX64, event["pubkey"]):
        _malformed("pubkey must be 64 lower-case hex characters (x-only public key)")
    if not _is_hex(_HEX128, event["sig"]):
        _malformed("sig must be 128 lower-case hex characters")
    if not _is_int(event["created_at"]) or not 0 <= event["created_at"] <= _MAX_CREATED_AT:
        _malformed("created_at must be a non-negative integer (unix seconds)")
    if not _is_int(event["kind"]) or not 0 <= event["kind"] <= 0xFFFF:
        _malformed("kind must be an integer from 0 to 65535")
    tags = event["tags"]
    if not isinstance(tags, list) or not all(_is_tag(tag) for tag in tags):
        _malformed("tags must be a list of non-empty lists of strings")
    if not isinstance(event["content"], str):
        _malformed("content must be a string")
    if not _is_unicode(event["content"]) or not all(_is_unicode(v) for tag in tags for v in tag):
        _malformed("content and tags must be valid Unicode (no lone surrogates)")
    event["tags"] = [list(tag) for tag in tags]  # our own copy: raw must stay as verified
    return event


def _unambiguous(event: dict[str, Any]) -> None:
    tags: list[list[str]] = event["tags"]
    if _CONTROL.search(event["content"]) or any(_CONTROL.search(v) for tag in tags for v in tag):
        _malformed(
            "content and tags must not contain control characters (U+0000 to U+001F), "
            "since NIP-01 serialisers disagree on them; in JSON content write them escaped"
        )


def _within_limits(event: dict[str, Any], max_content_bytes: int) -> None:
    content_bytes = len(event["content"].encode())
    if content_bytes > max_content_bytes:
        raise TooLarge(
            f"content is {content_bytes} bytes; the limit is {max_content_bytes} bytes",
            code=RefusalCode.TOO_LARGE,
        )
    tags_bytes = sum(len(value.encode()) for tag in event["tags"] for value in tag)
    if tags_bytes > max_content_bytes:
        raise TooLarge(
            f"tags hold {tags_bytes} bytes; the limit is {max_content_bytes} bytes",
            code=RefusalCode.TOO_LARGE,
        )


def _check_op(tags: list[list[str]], op: str) -> None:
    op_tags = [tag for tag in tags if tag[0] == "op"]
    if op_tags != [["op", op]]:
        found = ", ".join(json.dumps(tag) for tag in op_tags) or "none"
        raise Invalid(
            f'this endpoint needs exactly one tag ["op", "{op}"]; the event has {found}',
            code=RefusalCode.WRONG_OP,
        )


def _check_task(tags: list[list[str]], task_id: str | None) -> None:
    task_tags = [tag for tag in tags if tag[0] == "task"]
    if task_id is None:
        if task_tags:
            raise Invalid(
                "a request that creates a task must not carry a task tag; remove it",
                code=RefusalCode.WRONG_TASK,
            )
        return
    if task_tags != [["task", task_id]]:
        found = ", ".join(json.dumps(tag) for tag in task_tags) or "none"
        raise Invalid(
            f'this request is for task {task_id} and needs exactly one tag ["task", "{task_id}"]; '
            f"the event has {found}",
            code=RefusalCode.WRONG_TASK,
        )


def _check_fresh(created_at: int, now: int, window_s: int) -> None:
    offset = created_at - now
    if abs(offset) > window_s:
        direction = "in the future" if offset > 0 else "in the past"
        raise Invalid(
            f"created_at is {abs(offset)} s {direction}; it must be within {window_s} s of the "
            f"server's clock ({now}): check your clock and sign a fresh event",
            code=RefusalCode.STALE_REQUEST,
        )


def _content_object(content: str) -> dict[str, Any]:
    try:
        value = json.loads(
            content,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constant,
            parse_int=_int64,
        )
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise Invalid(
            "content must be a JSON object (no duplicate keys, no NaN or Infinity, integers"
            " within ±(2^63 - 1)) holding the request's fields",
            code=RefusalCode.MALFORMED_CONTENT,
        )
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins; an auditor must read what we read.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _int64(digits: str) -> int:
    value = int(digits)
    if abs(value) > _MAX_CONTENT_INT:
        raise ValueError("integer out of range")
    return value


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _is_hex(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_tag(tag: object) -> bool:
    return isinstance(tag, list) and bool(tag) and all(isinstance(value, str) for value in tag)
