"""``LeanProcess`` runs a function in a fresh interpreter that imports only that function's
module (not the parent's main module), returns its result, and reports a failure there."""

from __future__ import annotations

import sys

import pytest

from taskhold.nostr import NostrKeys
from taskhold.nostr.lean_process import LeanProcess
from taskhold.nostr.verify import _verify_chunk, nip01_id


def loaded_modules(prefix: str) -> list[str]:
    """The modules of the process it runs in whose name starts with ``prefix``."""
    return sorted(name for name in sys.modules if name.startswith(prefix))


def test_the_result_comes_back_from_a_process_that_imported_only_its_module() -> None:
    import taskhold.cli  # noqa: F401  (the parent has it; the child must not)

    keys = NostrKeys.generate()
    good = keys.sign_event(3910, "x", [["op", "y"]], 1_760_000_000)
    events = [good, {**good, "content": "z"}]
    assert LeanProcess(_verify_chunk, events).result() == [True, False]
    in_child = LeanProcess(loaded_modules, "taskhold").result()
    assert "taskhold.nostr.lean_process" in in_child
    assert "taskhold.cli" not in in_child and "taskhold.store" not in in_child
    assert "taskhold.cli" in loaded_modules("taskhold")


def test_a_failure_in_the_child_is_raised_here() -> None:
    with pytest.raises(RuntimeError, match="nip01_id failed in its process"):
        LeanProcess(nip01_id, {}).result()  # KeyError there
