"""The auditor stands on its own: no import of the writer's code or of nostr-sdk, and its
NIP-01/BIP-340 and NIP-19 code agrees with nostr-sdk's on events and keys it did not make."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskhold.audit import Verdict, operator_hex, verify_event
from taskhold.nostr import NostrKeys

AUDIT_PACKAGE = Path(__file__).resolve().parents[2] / "taskhold" / "audit"
FORBIDDEN = ("nostr_sdk", "taskhold.nostr", "taskhold.tasks", "taskhold.store")
SPECIFICATION = ("taskhold.reputation.score",)
"""The published score function (standard library only, tested in tests/reputation) is part of
what is audited, the way the log format is: recomputing a score needs the same function."""


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_module_of_the_auditor_imports_the_writer_or_nostr_sdk() -> None:
    modules = sorted(AUDIT_PACKAGE.glob("*.py"))
    assert len(modules) >= 6
    for path in modules:
        for name in _imports(path):
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
            allowed = name.startswith("taskhold.audit") or name in SPECIFICATION
            assert not name.startswith("taskhold.") or allowed, name


def test_running_an_audit_loads_none_of_them() -> None:
    keys = NostrKeys.generate()
    event = keys.sign_event(3910, "{}", [["gseq", "0"]], 1_760_000_000)
    script = f"""
import json, sys
from taskhold.audit import audit_log
from taskhold.audit.cli import audit_command
audit_log([json.loads({json.dumps(json.dumps(event))})], {keys.pubkey_hex!r})
loaded = [m for m in sys.modules if m.startswith({FORBIDDEN!r})]
print(json.dumps(loaded))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


TRICKY = ["", "plain", 'quote " and \\ backslash', "line\nbreak\ttab", "é ü 中文 🎉",
          "\x01\x1f control", "\u2028\u2029 separators", "</script>"]  # fmt: skip


@pytest.mark.parametrize("content", TRICKY)
def test_events_signed_by_nostr_sdk_verify(content: str) -> None:
    keys = NostrKeys.generate()
    event = keys.sign_event(3912, content, [["op", "x"], ["t", content]], 1_760_000_000)
    assert verify_event(event) is Verdict.OK
    assert verify_event({**event, "content": content + "!"}) is Verdict.BAD_ID
    other = NostrKeys.generate().sign_event(3912, content, [], 1)
    assert verify_event({**event, "sig": other["sig"]}) is Verdict.BAD_SIGNATURE
    assert verify_event({**event, "created_at": True}) is Verdict.MALFORMED
    assert verify_event({**event, "tags": [["op", 1]]}) is Verdict.MALFORMED


def test_npub_and_hex_name_the_same_operator() -> None:
    keys = NostrKeys.generate()
    assert operator_hex(keys.npub) == keys.pubkey_hex
    assert operator_hex(keys.npub.upper()) == keys.pubkey_hex
    assert operator_hex(f"nostr:{keys.npub}") == keys.pubkey_hex
    assert operator_hex(keys.pubkey_hex.upper()) == keys.pubkey_hex


@pytest.mark.parametrize(
    "text",
    ["", "npub1", "nsec1" + "q" * 58, "x" * 64, "npub1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="npub"):
        operator_hex(text)


def test_an_npub_with_one_character_changed_is_refused() -> None:
    npub = NostrKeys.generate().npub
    changed = npub[:10] + ("q" if npub[10] != "q" else "p") + npub[11:]
    with pytest.raises(ValueError, match="checksum"):
        operator_hex(changed)
