"""The board's own logic without a browser: the payout terms it reads from a BOLT11 invoice are
the ones taskhold's decoder reads (the server refuses a proof whose signed terms differ), and
no board module parses data as markup."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support.browser import WEB, node_or_skip

from taskhold.payments.invoices import decode_invoice

BOARD_SOURCES = [WEB / "src" / "board.js", WEB / "src" / "dom.js", WEB / "src" / "api.js",
                 *sorted((WEB / "src" / "board").glob("*.js"))]  # fmt: skip


def _node_terms(node: str, invoices: list[str]) -> list[dict[str, object]]:
    script = (
        "import { payoutTerms } from './src/board/bolt11.js';"
        "const given = JSON.parse(process.argv[1]);"
        "console.log(JSON.stringify(given.map((text) => {"
        "  try { return payoutTerms(text); } catch (error) { return { error: error.message }; }"
        "})));"
    )
    ran = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(invoices)],
        cwd=WEB, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    terms: list[dict[str, object]] = json.loads(ran.stdout)
    return terms


def _invoice(amount_msat: int | None, payment_hash: str) -> str:
    """A regtest invoice of the sim wallet's kind (the bolt11 package, a made-up node key)."""
    from bolt11 import Bolt11, encode
    from bolt11.models.tags import Tag, TagChar, Tags
    from bolt11.types import MilliSatoshi

    tags = Tags([Tag(TagChar.payment_hash, payment_hash),
                 Tag(TagChar.description, "taskhold task"),
                 Tag(TagChar.payment_secret, "11" * 32)])  # fmt: skip
    amount = None if amount_msat is None else MilliSatoshi(amount_msat)
    return encode(Bolt11(currency="bcrt", amount_msat=amount, date=1_700_000_000, tags=tags),
                  "22" * 32)  # fmt: skip


def test_the_board_reads_an_invoices_terms_as_taskhold_does() -> None:
    node = node_or_skip()
    # amounts written with the n, p and m multipliers
    invoices = [_invoice(msat, f"{msat:064x}") for msat in (2_079_000, 1_234_567, 100_000_000, 10)]
    for invoice, terms in zip(invoices, _node_terms(node, invoices), strict=True):
        decoded = decode_invoice(invoice)
        assert terms == {"paymentHash": decoded.payment_hash_hex, "amountMsat": decoded.amount_msat}


def test_the_board_refuses_what_is_no_payout_invoice() -> None:
    node = node_or_skip()
    answers = _node_terms(node, [_invoice(None, "33" * 32), "not an invoice", "npub1xyz"])
    assert [answer["error"] for answer in answers] == [
        "the invoice names no amount: make one for the payout",
        "this is not a Lightning invoice (BOLT11)",
        "this is not a Lightning invoice (BOLT11)",
    ]


@pytest.mark.parametrize("source", BOARD_SOURCES, ids=lambda path: path.name)
def test_no_board_module_parses_data_as_markup(source: Path) -> None:
    text = source.read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", text)
