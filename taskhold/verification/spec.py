"""The acceptance spec: a small declarative contract a worker's proof must satisfy.

Employers state it when they create a task, so the automatic check is public and the same for
everyone. It deliberately has no code: required fields, regular expressions, URL fields and an
expected content hash cover what can be checked without a human.

Patterns run on RE2, whose matching time is linear in the input: a pattern like ``(a+)+`` cannot
stall the server. Features that need backtracking (backreferences, lookaround) are refused when
the task is created, and the text a pattern is checked against is capped.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any
from urllib.parse import urlparse

import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from taskhold.errors import Invalid, RefusalCode

__all__ = ["AcceptanceSpec", "check_proof", "parse_spec"]

MAX_PATTERN_LENGTH = 200
MAX_MATCHED_CHARS = 4_096
"""A proof field checked against a pattern may hold at most this many characters."""

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """The RE2 program for ``pattern``; raises ``re2.error`` when RE2 cannot run it."""
    return re2.compile(pattern, _RE2_OPTIONS)


def _checkable(name: str, pattern: str) -> None:
    try:
        _compiled(pattern)
    except re2.error as exc:
        message = exc.args[0] if exc.args else ""
        reason = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    else:
        return
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern for {name!r} does not compile: {exc}") from exc
    raise PydanticCustomError(
        "unsupported_pattern",
        "pattern for '{name}' is not RE2 syntax ({reason}): backreferences and lookaround are"
        " refused, since matching them can take exponential time; write it without them",
        {"name": name, "reason": reason},
    )


class AcceptanceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    required_fields: list[str] = Field(default_factory=list, max_length=32)
    regex: dict[str, str] = Field(default_factory=dict, max_length=32)
    """field name -> pattern the field's string value must fully match (RE2 syntax)."""
    url_fields: list[str] = Field(default_factory=list, max_length=32)
    """fields that must hold an http(s) URL."""
    content_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """hex sha256 the proof's ``content`` field must hash to (UTF-8)."""

    @field_validator("regex")
    @classmethod
    def _patterns_compile(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if len(pattern) > MAX_PATTERN_LENGTH:
                raise ValueError(f"pattern for {name!r} is longer than {MAX_PATTERN_LENGTH}")
            _checkable(name, pattern)
        return value


def parse_spec(raw: dict[str, Any] | None) -> AcceptanceSpec:
    """Validate an employer's spec at task creation; a 422 that names the bad part."""
    try:
        return AcceptanceSpec.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "acceptance"
        code = (
            RefusalCode.UNSUPPORTED_PATTERN
            if first["type"] == "unsupported_pattern"
            else RefusalCode.BAD_ACCEPTANCE_SPEC
        )
        raise Invalid(f"acceptance.{where}: {first['msg']}", code=code) from exc


def check_proof(spec: AcceptanceSpec, proof: dict[str, Any]) -> list[str]:
    """Every way ``proof`` misses the spec, as sentences; empty when it passes."""
    problems: list[str] = []
    for name in spec.required_fields:
        if proof.get(name) in (None, "", [], {}):
            problems.append(f"field {name!r} is required")
    for name, pattern in spec.regex.items():
        value = proof.get(name)
        if isinstance(value, str) and len(value) > MAX_MATCHED_CHARS:
            problems.append(f"field {name!r} is longer than {MAX_MATCHED_CHARS} characters")
        elif not isinstance(value, str) or _compiled(pattern).fullmatch(value) is None:
            problems.append(f"field {name!r} must match {pattern!r}")
    for name in spec.url_fields:
        value = proof.get(name)
        parsed = urlparse(value) if isinstance(value, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append(f"field {name!r} must be an http(s) URL")
    if spec.content_sha256 is not None:
        content = proof.get("content")
        digest = hashlib.sha256(content.encode()).hexdigest() if isinstance(content, str) else None
        if digest != spec.content_sha256:
            problems.append("field 'content' does not hash to the agreed content_sha256")
    return problems
