"""NIP-01 event ids and BIP-340 signatures, computed here from the NIP text on coincurve.

Nothing in this module comes from the writer: the auditor must be able to catch a serialisation
bug in taskhold's own signing path, so it cannot share it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import lru_cache, partial
from json import encoder as _json_encoder
from typing import Any, cast

import orjson
from coincurve import PublicKeyXOnly

__all__ = [
    "HEX64", "Verdict", "canonical_json", "compact_json", "event_id", "is_hex64", "parse_json",
    "parse_json_noting_floats", "shape_error", "verify_event",
]  # fmt: skip

HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


class Verdict(StrEnum):
    OK = "ok"
    MALFORMED = "malformed"
    BAD_ID = "bad_id"
    BAD_SIGNATURE = "bad_signature"


_fromhex = bytes.fromhex


def is_hex64(value: object) -> bool:
    """Exactly 64 lowercase hex characters (what ``HEX64`` matches): ``bytes.fromhex`` reads
    them and ``.hex()`` gives the same text back, which an upper-case digit, a space or a sign
    would not. Three times cheaper than the regular expression, and called for nearly every
    tag of every entry."""
    if not isinstance(value, str) or len(value) != 64:
        return False
    try:
        return _fromhex(value).hex() == value
    except ValueError:  # not hex at all (or not ASCII)
        return False


def shape_error(event: object) -> str | None:
    """Why ``event`` is not a well-formed NIP-01 event, or None when it is."""
    if type(event) is not dict and not isinstance(event, Mapping):
        return "not a JSON object"
    for name in ("id", "pubkey"):
        if not is_hex64(event.get(name)):
            return f"{name} is not 64 lowercase hex characters"
    sig = event.get("sig")
    if not isinstance(sig, str) or _HEX128.fullmatch(sig) is None:
        return "sig is not 128 lowercase hex characters"
    created_at, kind = event.get("created_at"), event.get("kind")
    if not isinstance(created_at, int) or isinstance(created_at, bool) or created_at < 0:
        return "created_at is not a non-negative integer"
    if not isinstance(kind, int) or isinstance(kind, bool) or not 0 <= kind <= 0xFFFF:
        return "kind is not an integer from 0 to 65535"
    if not isinstance(event.get("content"), str):
        return "content is not a string"
    tags = event.get("tags")
    if type(tags) is not list:
        return "tags is not a list"
    for tag in tags:
        if type(tag) is not list or not tag:
            return "a tag is not a non-empty list"
        for value in tag:
            if type(value) is not str:
                return "a tag holds something other than strings"
    return None


def _unserializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def compact_json(*, sort_keys: bool = False) -> Callable[[Any], str]:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=...)``, the
    same text, from one encoder made once (``json.dumps`` with options builds one per call,
    which cost more than the encoding of a log entry)."""
    make = getattr(_json_encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return partial(json.dumps, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    # No check for cycles (markers None): an encoder kept across calls would keep the marks of
    # a call that failed; what is encoded here is parsed JSON or a checked event, acyclic.
    encode = make(None, _unserializable, _json_encoder.encode_basestring, None, ":", ",",
                  sort_keys, False, True)  # fmt: skip
    join = "".join

    def dumps(value: Any) -> str:
        return join(encode(value, 0))

    return dumps


_compact = compact_json()
_decoder: Any = json.JSONDecoder()  # its scan_once, the C scanner, is not in the stubs
_scan_json: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once


def parse_json(text: str) -> Any:
    """``json.loads(text)``: the same value or the same ValueError, without its two layers of
    Python around the C scanner when ``text`` is one JSON value with nothing around it (what
    every well-formed content is); anything else is read by ``json.loads`` itself."""
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


class _FloatRead(Exception):
    """A number the scanner below was about to read as a float."""


def _refuse_float(text: str) -> float:
    raise _FloatRead(text)


# The C scanner calls a ``parse_float`` that is not ``float`` itself only for numbers with a
# fraction or an exponent, and ``parse_constant`` only for NaN and the infinities, so refusing
# them costs a float-free text nothing.
_floatless_decoder: Any = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_float)
_scan_json_floatless: Callable[[str, int], tuple[Any, int]] = _floatless_decoder.scan_once


def parse_json_noting_floats(text: str) -> tuple[Any, bool]:
    """``parse_json(text)``, the same value or the same ValueError, and whether the value is
    known to hold no float: False when it does, and whenever ``text`` is not one bare value
    (``json.loads`` then reads it, and nothing is known of what it read)."""
    try:
        value, end = _scan_json_floatless(text, 0)
    except _FloatRead:
        return parse_json(text), False
    except (StopIteration, ValueError):
        return json.loads(text), False
    if end == len(text):
        return value, True
    return json.loads(text), False


_sorted_compact = compact_json(sort_keys=True)
_orjson_dumps = orjson.dumps
_ORJSON_SORTED = orjson.OPT_SORT_KEYS
_OrjsonError = orjson.JSONEncodeError


def canonical_json(value: Any, *, floatless: bool) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)`` for a
    value parsed from JSON; ``floatless`` when the value is known to hold no float.

    orjson writes the same text several times faster for such a value (strings escaped alike:
    the quote, the backslash, the five short escapes, other control characters as ``\\u00XX``,
    the rest verbatim; keys sorted by code point) but writes floats its own way (``1e16``
    where ``json`` writes ``1e+16``, ``null`` for NaN) and refuses lone surrogates, integers
    beyond 64 bits and deep nesting. So it is used only without floats, and whatever it
    refuses is written by the ``json`` encoder, as it is otherwise.
    """
    if floatless:
        try:
            return _orjson_dumps(value, option=_ORJSON_SORTED).decode()
        except _OrjsonError:
            pass
    return _sorted_compact(value)


def _id_digest(pubkey: str, created_at: int, kind: int, tags: list[Any], content: str) -> bytes:
    """``event_id`` of fields whose types ``_verifies`` checked exactly (str, int, lists of
    str): orjson writes their compact JSON as the ``json`` encoder does (see
    ``canonical_json``; no float can be among them), UTF-8 encoded already; what it refuses (a
    lone surrogate, an integer beyond 64 bits) is written by the ``json`` encoder."""
    serialized = [0, pubkey, created_at, kind, tags, content]
    try:
        return _sha256(_orjson_dumps(serialized)).digest()
    except _OrjsonError:
        return _sha256(_compact(serialized).encode()).digest()


def event_id(event: Mapping[str, Any]) -> bytes:
    """sha256 of ``[0, pubkey, created_at, kind, tags, content]`` as compact UTF-8 JSON."""
    serialized = _compact(
        [0, event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]]
    )
    return hashlib.sha256(serialized.encode()).digest()


@lru_cache(maxsize=4096)
def _xonly(pubkey_hex: str) -> Any:
    return PublicKeyXOnly(bytes.fromhex(pubkey_hex))


_KEYS: dict[str, Any] = {}
"""Parsed keys of the authors seen by ``_verifies``, each 64 lowercase hex (bounded below)."""
_sha256 = hashlib.sha256


def _verifies(event: object) -> bool:
    """True when ``event`` is a well-formed event whose id and signature verify, checked in one
    pass with the types read strictly (a dict, ints, a list of lists of str); False whenever
    anything is otherwise, and ``verify_event`` then says exactly why the long way."""
    if type(event) is not dict:
        return False
    try:
        pubkey, created_at, kind = event["pubkey"], event["created_at"], event["kind"]
        tags, content, sig = event["tags"], event["content"], event["sig"]
        key = _KEYS.get(pubkey)
    except (KeyError, TypeError):  # a field missing, or an unhashable pubkey
        return False
    if (
        type(created_at) is not int
        or created_at < 0
        or type(kind) is not int
        or not 0 <= kind <= 0xFFFF
        or type(content) is not str
        or type(tags) is not list
        or type(sig) is not str
        or len(sig) != 128
    ):
        return False
    try:
        sig_bytes = _fromhex(sig)
    except ValueError:
        return False
    if sig_bytes.hex() != sig:  # 128 lowercase hex, as is_hex64 reads 64
        return False
    for tag in tags:
        if type(tag) is not list or not tag:
            return False
        for value in tag:
            if type(value) is not str:
                return False
    if key is None:
        if not is_hex64(pubkey):
            return False
        try:
            key = PublicKeyXOnly(_fromhex(pubkey))
        except ValueError:
            return False
        if len(_KEYS) >= 65_536:
            _KEYS.clear()
        _KEYS[pubkey] = key
    digest = _id_digest(pubkey, created_at, kind, tags, content)
    if digest.hex() != event.get("id"):  # equal only to 64 lowercase hex
        return False
    return bool(key.verify(sig_bytes, digest))


def verify_event(event: object) -> Verdict:
    """Shape, then the id, then the BIP-340 signature over the id."""
    if _verifies(event):
        return Verdict.OK
    if shape_error(event) is not None:
        return Verdict.MALFORMED
    event = cast("Mapping[str, Any]", event)
    digest = event_id(event)
    if digest.hex() != event["id"]:
        return Verdict.BAD_ID
    try:
        valid = bool(_xonly(event["pubkey"]).verify(bytes.fromhex(event["sig"]), digest))
    except (ValueError, TypeError):
        valid = False
    return Verdict.OK if valid else Verdict.BAD_SIGNATURE
