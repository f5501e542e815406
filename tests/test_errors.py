"""The refusal codes are one catalogue: the set is pinned, every code is used, no raise site
spells a code as a loose string, and ``docs/refusal-codes.md`` is generated from the enum.

Clients match on these values, so removing or renaming one is a breaking change of the API:
the pinned list below changes only on purpose.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from taskhold.errors import Forbidden, Invalid, Refusal, RefusalCode, problem_body

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "taskhold"
DOC = ROOT / "docs" / "refusal-codes.md"

PINNED = [
    "already_applied", "already_reviewed", "amount_out_of_range", "apply_only",
    "bad_acceptance_spec", "bad_agreement_amount", "bad_claim_mode", "bad_claim_timeout",
    "bad_invoice", "bad_preimage", "bad_review_window", "bad_signature", "barred_worker",
    "claim_timeout_running", "conflict", "database_unavailable", "deadline_in_past",
    "deadline_passed", "deposit_exists", "deposit_not_needed", "deposit_required",
    "deposits_disabled", "direct_worker_only", "dispute_window_closed", "forbidden", "hash_reused",
    "hold_too_long", "http_error", "idempotency_key_mismatch", "idempotency_key_missing",
    "idempotency_key_reused", "internal_error", "invalid_content", "invalid_pubkey",
    "invalid_receipt", "invalid_request", "invalid_split", "invalid_value", "invalid_winner",
    "invoice_expiring", "kind_not_allowed", "lightning_unavailable", "log_event_too_large",
    "log_rejected", "malformed_content", "malformed_event", "method_not_allowed", "missing_head",
    "no_arbiter", "no_payout_invoice", "no_problems", "no_proof", "no_proposal",
    "no_refund_ordered", "no_such_deposit", "no_such_task", "no_worker", "not_a_party",
    "not_a_split", "not_an_applicant", "not_apply_mode", "not_found", "not_your_proposal",
    "nothing_to_dispute", "own_proposal", "payment_failed", "payout_cltv_too_long",
    "payout_hash_reused", "payout_to_escrow_node", "pow_required", "proof_on_record",
    "proof_rejected", "proposal_changed", "rate_limited", "reason_required", "refund_under_way",
    "replayed_request", "reputation_disabled", "review_pending", "review_window_closed",
    "reviews_disabled", "share_already_paid", "stale_head", "stale_request", "task_closed",
    "task_exists", "task_not_closed", "task_too_long", "too_large", "too_many_applications",
    "too_many_deposits",
    "too_many_open_invoices", "too_many_refused_proofs", "underpaid", "unsupported_pattern",
    "write_conflict", "wrong_amount", "wrong_kind", "wrong_network", "wrong_op", "wrong_role",
    "wrong_round", "wrong_state", "wrong_task",
    "bad_milestones", "milestone_funded_by_series", "series_worker_only",
    "payout_terms_mismatch",
    "commitment_mismatch", "private_task_malformed", "sealed_content_invalid",
    "sealed_copy_missing", "details_unavailable",
    "bad_swap_report", "swap_fact_conflict", "too_many_swaps",
    "insufficient_capacity",
    "intake_paused",
    "blocked_jurisdiction", "blocked_key",
]  # fmt: skip


def _modules() -> list[Path]:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50
    return modules


def _loose_codes(tree: ast.AST) -> list[int]:
    """Lines that spell a code as a string: ``code="…"``, ``code = "…"`` in a class body, or a
    ``"code": "…"`` member of a hand-built problem body."""
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "code":
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                lines.append(node.value.lineno)
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                targets = (
                    statement.targets
                    if isinstance(statement, ast.Assign)
                    else [statement.target]
                    if isinstance(statement, ast.AnnAssign)
                    else []
                )
                value = getattr(statement, "value", None)
                named_code = any(isinstance(t, ast.Name) and t.id == "code" for t in targets)
                if named_code and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    lines.append(statement.lineno)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "code"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    lines.append(key.lineno)
    return lines


def test_the_set_of_codes_is_pinned() -> None:
    assert sorted(code.value for code in RefusalCode) == sorted(PINNED)


def test_every_code_says_when_it_is_used() -> None:
    for code in RefusalCode:
        assert code.when and "\n" not in code.when, code
        assert code == code.value and RefusalCode(code.value) is code


def test_no_module_spells_a_code_as_a_string() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _modules()
        for line in _loose_codes(ast.parse(path.read_text()))
    ]
    assert found == [], "use RefusalCode members instead of strings: " + ", ".join(found)


@pytest.mark.parametrize(
    "source",
    [
        'raise Invalid("x", code="invalid_content")',
        'class Late(Refusal):\n    code = "late"',
        'class Late(Refusal):\n    code: str = "late"',
        'body = {"status": 422, "code": "proof_rejected"}',
    ],
)
def test_the_scan_finds_a_loose_code(source: str) -> None:
    assert _loose_codes(ast.parse(source)) == [1 if "class" not in source else 2]


def test_every_code_is_used_somewhere() -> None:
    """A code nobody raises is a promise the catalogue cannot keep; drop it instead."""
    used: set[str] = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "RefusalCode"
            ):
                used.add(node.attr)
    assert sorted(set(RefusalCode.__members__) - used) == []


def test_a_refusal_renders_its_problem_body() -> None:
    refusal = Forbidden("no", code=RefusalCode.BAD_SIGNATURE, status=401)
    assert refusal.problem() == {
        "type": "https://taskhold.invalid/problems/bad_signature",
        "title": "Signature does not verify",
        "status": 401,
        "code": "bad_signature",
        "detail": "no",
    }
    assert type(refusal.problem()["code"]) is str  # stored as JSON as it is
    assert Invalid("x").code is RefusalCode.INVALID_VALUE
    assert Refusal("x").problem() == problem_body(400, RefusalCode.INVALID_REQUEST, "x")


def catalogue_markdown() -> str:
    """``docs/refusal-codes.md``, from the enum (write it: ``python tests/test_errors.py``)."""
    rows = "\n".join(f"| `{code.value}` | {code.when} |" for code in RefusalCode)
    return (
        "# Refusal codes\n\n"
        "Every problem+json answer of taskhold (RFC 9457) carries one of these `code` values;\n"
        "clients match on them, never on `detail`. Generated from `taskhold.errors.RefusalCode`\n"
        "by `python tests/test_errors.py`; `tests/test_errors.py` fails when they differ.\n\n"
        "| code | when |\n|---|---|\n" + rows + "\n"
    )


def test_the_documented_catalogue_is_the_enum() -> None:
    assert DOC.read_text() == catalogue_markdown(), "run: python tests/test_errors.py"


if __name__ == "__main__":
    DOC.write_text(catalogue_markdown())
    sys.exit(0)
