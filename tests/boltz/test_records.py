"""The client's swap records: written whole or not at all, 0600, legal steps only, and never
showing the secret key or preimage in a repr or a log line."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from taskhold.boltz.errors import RecordError
from taskhold.boltz.records import TRANSITIONS, SwapRecord, SwapRecords
from taskhold.swaps.tree import SwapType

SECRET = "5e" * 32
PREIMAGE = "a7" * 32
TXID = "11" * 32


def record(kind: SwapType = SwapType.SUBMARINE, swap_id: str = "abc123") -> SwapRecord:
    return SwapRecord(
        kind=kind,
        swap_id=swap_id,
        task_id="task-1",
        network="bcrt",
        secret_key_hex=SECRET,
        boltz_pubkey_hex="02" + "33" * 32,
        payment_hash_hex="44" * 32,
        timeout_block_height=1_008,
        claim_leaf_hex="a9",
        refund_leaf_hex="20",
        address="bcrt1p...",
        expected_amount_sat=104_479,
        invoice="lnbcrt1...",
        invoice_amount_sat=100_000,
        preimage_hex=PREIMAGE if kind is SwapType.REVERSE else None,
    )


def test_secrets_never_show_in_repr_str_or_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    reverse = record(SwapType.REVERSE)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("taskhold.test").info("swap %s / %r", reverse, reverse)
    logging.getLogger("taskhold.test").info("swap %s", [reverse])
    for text in (repr(reverse), str(reverse), caplog.text):
        assert SECRET not in text and PREIMAGE not in text
    assert "abc123" in caplog.text  # the record was logged, without its secrets


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_write_interrupted_before_the_rename_leaves_the_old_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    store = SwapRecords(tmp_path / "swaps")
    store.create(record())

    def crash(*_args: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, step, crash)
    with pytest.raises(OSError, match="power cut"):
        store.move("abc123", "lockup_sent", txid=TXID)
    monkeypatch.undo()
    assert store.get("abc123").state == "created"
    assert sorted(p.name for p in (tmp_path / "swaps").iterdir()) == ["abc123.json"]


def test_a_temp_file_left_by_a_crash_is_not_a_record(tmp_path: Path) -> None:
    store = SwapRecords(tmp_path)
    store.create(record())
    (tmp_path / ".abc123.999.tmp").write_text("{half")
    assert [r.swap_id for r in store.open_swaps()] == ["abc123"]


def test_records_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    store = SwapRecords(tmp_path / "swaps")
    store.create(record())
    store.move("abc123", "lockup_sent", txid=TXID)
    assert stat.S_IMODE((tmp_path / "swaps" / "abc123.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "swaps").stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("kind", "steps", "illegal"),
    [
        (SwapType.SUBMARINE, [], "claimed"),
        (SwapType.SUBMARINE, [("lockup_sent", TXID), ("claimed", None)], "refunded"),
        (SwapType.SUBMARINE, [("lockup_sent", TXID), ("refunded", TXID)], "lockup_sent"),
        (SwapType.REVERSE, [], "claimed"),
        (SwapType.REVERSE, [("invoice_handed", None)], "created"),
        (SwapType.REVERSE, [("invoice_handed", None), ("expired", None)], "lockup_seen"),
        (SwapType.REVERSE, [], "refunded"),
    ],
)
def test_an_illegal_step_raises_and_changes_nothing(
    tmp_path: Path, kind: SwapType, steps: list[tuple[str, str | None]], illegal: str
) -> None:
    store = SwapRecords(tmp_path)
    store.create(record(kind))
    for to, txid in steps:
        store.move("abc123", to, txid=txid)
    before = store.get("abc123")
    with pytest.raises(RecordError, match="cannot go from"):
        store.move("abc123", illegal, txid=TXID)
    assert store.get("abc123") == before


@pytest.mark.parametrize(
    ("to", "txid", "problem"),
    [("lockup_sent", None, "needs its txid"), ("lockup_sent", "zz" * 32, "64 hex"),
     ("failed", TXID, "records no txid")],
)  # fmt: skip
def test_txids_come_with_the_steps_that_have_one(to: str, txid: str | None, problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        record().moved(to, txid)


def test_the_submarine_lifecycle_records_its_txids(tmp_path: Path) -> None:
    store = SwapRecords(tmp_path)
    store.create(record())
    store.move("abc123", "lockup_sent", txid=TXID)
    store.move("abc123", "failed")
    assert [r.swap_id for r in store.open_swaps()] == ["abc123"]  # the lockup needs a refund
    done = store.move("abc123", "refunded", txid="22" * 32)
    assert (done.lockup_txid, done.refund_txid, done.state) == (TXID, "22" * 32, "refunded")
    assert store.get("abc123") == done
    assert store.open_swaps() == []


def test_the_reverse_lifecycle_keeps_the_preimage_until_claimed(tmp_path: Path) -> None:
    store = SwapRecords(tmp_path)
    store.create(record(SwapType.REVERSE))
    store.move("abc123", "invoice_handed")
    store.move("abc123", "lockup_seen", txid=TXID)
    assert store.get("abc123").preimage_hex == PREIMAGE
    store.move("abc123", "claimed", txid="33" * 32)
    assert store.get("abc123").claim_txid == "33" * 32
    assert store.open_swaps() == []


def test_open_swaps_lists_the_unfinished_for_resume(tmp_path: Path) -> None:
    store = SwapRecords(tmp_path)
    for swap_id in ("a1", "a2", "a3"):
        store.create(record(swap_id=swap_id))
    store.move("a2", "failed")  # nothing was locked: nothing to resume
    store.move("a3", "lockup_sent", txid=TXID)
    assert [r.swap_id for r in SwapRecords(tmp_path).open_swaps()] == ["a1", "a3"]


def test_every_state_in_the_table_is_reachable_or_the_start() -> None:
    for _kind, table in TRANSITIONS.items():
        reachable = {"created"} | set().union(*table.values())
        assert set(table) <= reachable


@pytest.mark.parametrize("swap_id", ["../escape", "a/b", "", "x" * 65, ".hidden", "ä"])
def test_a_hostile_swap_id_never_names_a_file(tmp_path: Path, swap_id: str) -> None:
    with pytest.raises(RecordError, match="not a swap id"):
        record(swap_id=swap_id)
    with pytest.raises(RecordError, match="not a swap id"):
        SwapRecords(tmp_path).get(swap_id)


def test_a_swap_is_recorded_once(tmp_path: Path) -> None:
    store = SwapRecords(tmp_path)
    store.create(record())
    with pytest.raises(RecordError, match="already recorded"):
        store.create(record())


def test_a_damaged_record_is_an_error_not_a_crash(tmp_path: Path) -> None:
    store = SwapRecords(tmp_path)
    (tmp_path / "bad1.json").write_text("{not json")
    (tmp_path / "bad2.json").write_text('{"kind": "sideways"}')
    store.create(record(swap_id="good"))
    document = json.loads((tmp_path / "good.json").read_text())
    for n, change in enumerate(
        [{"timeout_block_height": "1008"}, {"expected_amount_sat": True}, {"address": None},
         {"secret_key_hex": 5}, {"extra": 1}]
    ):  # fmt: skip
        (tmp_path / f"bad{n + 3}.json").write_text(json.dumps({**document, **change}))
    for swap_id in ("bad1", "bad2", "bad3", "bad4", "bad5", "bad6", "bad7", "missing"):
        with pytest.raises(RecordError):
            store.get(swap_id)
