"""docs/boltz-client.md names only functions and methods that exist, so it cannot drift."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from taskhold.boltz.api import BoltzApi
from taskhold.boltz.records import SwapRecord, SwapRecords

DOC = Path(__file__).resolve().parents[2] / "docs" / "boltz-client.md"
OWNERS = {
    "api": [BoltzApi],
    "fees": ["taskhold.swaps.fees"],
    "timing": ["taskhold.swaps.timing"],
    "verify": ["taskhold.boltz.verify"],
    "records": ["taskhold.boltz.records"],
    "ws": ["taskhold.boltz.ws"],
    "cooperative": ["taskhold.swaps.cooperative"],
    "record": [SwapRecord],
}


def test_every_call_the_doc_names_exists() -> None:
    text = DOC.read_text()
    calls = re.findall(r"\b(\w+)\.(\w+)\(", text) + re.findall(r"\)\.(\w+)\(", text)
    checked = 0
    for call in calls:
        owner, name = call if isinstance(call, tuple) else ("SwapRecords", call)
        candidates = [SwapRecords] if owner == "SwapRecords" else OWNERS.get(owner)
        if candidates is None:
            continue  # swaps.cooperative.x is spelled with its package
        things = [importlib.import_module(c) if isinstance(c, str) else c for c in candidates]
        assert any(hasattr(t, name) for t in things), f"{owner}.{name}"
        checked += 1
    assert checked >= 20
    for module in re.findall(r"`(taskhold(?:\.\w+)+)`", text):
        importlib.import_module(module)
