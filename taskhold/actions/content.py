"""Parsing a signed request's content into the model its operation expects."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskhold.errors import Invalid, RefusalCode

__all__ = ["PUBKEY_PATTERN", "PayoutTerms", "parse_content"]

M = TypeVar("M", bound=BaseModel)

PUBKEY_PATTERN = "^[0-9a-f]{64}$"
"""A participant's key in request content: 32 bytes of lowercase hex, as Nostr writes it."""


class PayoutTerms(BaseModel):
    """What a request that gives a payout invoice signs in clear: the invoice's payment hash
    and amount. The public log proves the payout against them (the settlement entry reveals the
    payout's preimage), whether or not the invoice itself is published. Required, but checked
    with the invoice (``payments.invoices.check_payout_terms``), after the signer's role and the
    task's state: a payee that does not sign them could not be shown to be paid."""

    model_config = ConfigDict(extra="forbid")

    payout_hash: str | None = Field(default=None, pattern=PUBKEY_PATTERN)
    payout_msat: int | None = Field(default=None, ge=1)


def parse_content(model: type[M], content: dict[str, Any]) -> M:
    """A 422 naming the first bad field, in words a person can act on.

    Strict: the content is signed JSON an auditor reads back, so ``"50000"`` or ``true`` is not
    an amount, and what taskhold acts on must be exactly what was signed.
    """
    try:
        return model.model_validate(content, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "content"
        raise Invalid(f"{where}: {first['msg']}", code=RefusalCode.INVALID_CONTENT) from exc
