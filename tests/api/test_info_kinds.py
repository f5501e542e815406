"""``/v1/info`` and the info event name the relays and every kind taskhold publishes, read from
the ``kind_*`` settings so that a kind added there is listed without touching the info code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.stacks import close_stack, open_stack, stack_settings, terms_of

from taskhold.api.info import SUBSCRIBING_DOC, publish_info, published_kinds
from taskhold.settings import Settings

DOCS = Path(__file__).resolve().parents[2]


def kind_settings(settings: Settings) -> dict[str, int]:
    return {
        name: getattr(settings, name)
        for name in type(settings).model_fields
        if name.startswith("kind_")
    }


async def test_info_lists_the_relays_and_every_kind_setting(
    tmp_path: Path, database_url: str
) -> None:
    relays = ["ws://127.0.0.1:1", "wss://relay.example.org"]
    stack = await open_stack(
        stack_settings(tmp_path, database_url, relays=relays, kind_listing=30499)
    )
    try:
        served = terms_of(await stack.http.get("/v1/info"))
        event = await publish_info(stack.services)
    finally:
        await close_stack(stack)
    assert json.loads(event["content"]) == served
    assert served["relays"] == relays
    every = kind_settings(stack.settings)
    assert len(every) >= 8
    assert served["kinds"] == {name.removeprefix("kind_"): kind for name, kind in every.items()}
    assert served["kinds"]["listing"] == 30499
    assert (DOCS / served["subscribing"]).is_file() and served["subscribing"] == SUBSCRIBING_DOC


def test_two_kind_settings_cannot_share_a_kind(tmp_path: Path) -> None:
    """A receipt configured with the log entry's kind would read as a log entry to every
    subscriber and to the auditor: refused at startup, naming both settings."""
    with pytest.raises(ValidationError, match="kind_log_entry = kind_receipt"):
        Settings(data_dir=tmp_path, kind_receipt=3910)
    assert Settings(data_dir=tmp_path, kind_receipt=3999).kind_receipt == 3999


def test_a_kind_setting_added_later_is_listed() -> None:
    class Later(Settings):
        kind_gift_wrap: int = 1059

    kinds = published_kinds(Later())
    assert kinds["gift_wrap"] == 1059
    assert kinds["log_entry"] == 3910
