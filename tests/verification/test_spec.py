"""Acceptance patterns run on a linear-time engine: no pattern can stall the server."""

from __future__ import annotations

import re
from typing import Any

import pytest

from taskhold.errors import Invalid
from taskhold.verification import check_proof, parse_spec
from taskhold.verification.spec import MAX_MATCHED_CHARS, AcceptanceSpec

EVIL = "(a+)+"
"""Exponential on a backtracking engine: 'a' * 30 + '!' takes Python's re about a minute."""


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a proof was matched with Python's backtracking re engine")


def _checked_without_re(spec: AcceptanceSpec, proof: dict[str, Any]) -> list[str]:
    """``check_proof`` with every entry point of Python's backtracking ``re`` failing."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("compile", "fullmatch", "match", "search"):
            patch.setattr(re, name, _refuse)
        return check_proof(spec, proof)


def test_a_pathological_pattern_is_checked_without_backtracking() -> None:
    spec = parse_spec({"regex": {"code": EVIL}})

    assert _checked_without_re(spec, {"code": "a" * 30 + "!"}) == [
        f"field 'code' must match {EVIL!r}"
    ]
    assert _checked_without_re(spec, {"code": "a" * 30}) == []


@pytest.mark.parametrize(
    "pattern", [r"(a)\1", r"(?P<x>a)(?P=x)", r"(?=a)a", r"(?!a)b", r"(?<=a)b", r"(?<!a)b"]
)
def test_backtracking_features_are_refused_with_their_own_code(pattern: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse_spec({"regex": {"code": pattern}})
    assert refused.value.code == "unsupported_pattern"
    assert refused.value.status == 422
    assert "'code'" in refused.value.detail


def test_a_pattern_that_does_not_compile_is_a_bad_spec() -> None:
    with pytest.raises(Invalid) as refused:
        parse_spec({"regex": {"code": "[a-"}})
    assert refused.value.code == "bad_acceptance_spec"


def test_a_long_pattern_is_refused() -> None:
    with pytest.raises(Invalid) as refused:
        parse_spec({"regex": {"code": "a" * 201}})
    assert refused.value.code == "bad_acceptance_spec"


def test_the_checked_text_is_capped() -> None:
    spec = parse_spec({"regex": {"code": "a*"}})
    assert check_proof(spec, {"code": "a" * MAX_MATCHED_CHARS}) == []
    assert check_proof(spec, {"code": "a" * (MAX_MATCHED_CHARS + 1)}) == [
        f"field 'code' is longer than {MAX_MATCHED_CHARS} characters"
    ]
