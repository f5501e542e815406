"""``keys rotate`` leaves a ``KeyRotated`` entry in the public log, signed by the old key and
naming the new one; the server signs with the new key after a restart, and the log stays
verifiable across the rotation: the auditor finds nothing and a rebuild reproduces the tasks,
both starting from the original operator key. An entry signed by a key that is not the current
one (the old key after the rotation, or a stranger's forged rotation) is reported and refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.keystores import (  # the fixtures keystore and softhsm
    KeystoreCase,
    keystore_fixture,  # noqa: F401
    softhsm_fixture,  # noqa: F401
)
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_flows import read_log, submitted, tag

from taskhold.audit import FindingKind, audit_log
from taskhold.audit.entry import AuditKinds, parse_entry
from taskhold.keys.admin import init_key_store
from taskhold.keys.audited import close_key_store
from taskhold.keys.operator import load_operator_keys
from taskhold.keys.signer import LocalSigner
from taskhold.keys.stores import open_key_store
from taskhold.nostr import NostrKeys
from taskhold.publiclog.rotation import rotate_operator
from taskhold.publiclog.writer import record_rotation
from taskhold.rebuild.replay import LogRejected, rebuild_from_entries
from taskhold.settings import Settings
from taskhold.store.models import LogEntryRow, OutboxRow, TaskRow


async def _paid_task(stack: Stack) -> str:
    employer, worker = stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    await employer.approve(task["task_id"])
    await stack.settle_engine()
    assert (await employer.get_task(task["task_id"]))["state"] == "PAID"
    return str(task["task_id"])


async def _states(stack: Stack) -> dict[str, str]:
    async with stack.services.store.transaction() as tx:
        rows = (await tx.session.execute(select(TaskRow.task_id, TaskRow.state))).all()
    return {task_id: state for task_id, state in rows}


def _rotation(log: list[dict[str, Any]]) -> dict[str, Any]:
    (rotation,) = [e for e in log if tag(e, "op") == "KeyRotated"]
    return rotation


async def test_rotation_leaves_the_log_verifiable(
    keystore: KeystoreCase, tmp_path: Path, database_url: str, database_kind: str
) -> None:
    settings = stack_settings(tmp_path, database_url, **keystore.overrides)
    init_key_store(settings)
    stack = await open_stack(settings)
    try:
        original = stack.services.signer.get_public_key()
        first = await _paid_task(stack)
    finally:
        await close_stack(stack)

    old, new = await rotate_operator(settings)
    assert old.pubkey_hex == original != new.pubkey_hex

    # Same data_dir (the key store now holds the new key) and the same Lightning network: a
    # new simulated one would hand out the same worker invoice hashes again.
    stack = await open_stack(settings, world=stack.world)
    try:
        assert stack.services.signer.get_public_key() == new.pubkey_hex
        second = await _paid_task(stack)
        log = await read_log(stack)
        states = await _states(stack)
        rotation = _rotation(log)
        async with stack.services.store.transaction() as tx:
            queued = await tx.session.get(OutboxRow, rotation["id"])
            stored = await tx.session.get(LogEntryRow, int(tag(rotation, "gseq") or -1))
    finally:
        await close_stack(stack)

    # the rotation entry: signed by the old key, naming the new one, stored and queued
    r = int(tag(rotation, "gseq") or -1)
    assert rotation["pubkey"] == original and rotation["kind"] == 3910
    assert [t[0] for t in rotation["tags"]] == ["op", "gseq", "o", "gprev", "new_key", "old_key"]
    assert tag(rotation, "new_key") == new.pubkey_hex and tag(rotation, "old_key") == original
    assert tag(rotation, "gprev") == log[r - 1]["id"] and tag(rotation, "o") == str(r)
    content = json.loads(rotation["content"])
    assert content["request"] is None and content["v"] == 1
    assert content["event"] == {
        "type": "KeyRotated",
        "new_key": new.pubkey_hex,
        "old_key": original,
        "at": rotation["created_at"],
    }
    assert queued is not None and not queued.done
    assert stored is not None and stored.task_id == "" and stored.seq == r
    assert all(e["pubkey"] == original for e in log[: r + 1])
    assert all(e["pubkey"] == new.pubkey_hex for e in log[r + 1 :]) and len(log) > r + 1
    later = log[r + 1]
    assert tag(later, "a") == f"30402:{new.pubkey_hex}:{second}"

    # (a) the auditor, given the original key, finds nothing across the rotation
    result = audit_log(log, original)
    assert result.clean, [f.to_json() for f in result.findings]
    assert result.summary.tasks == 2 and result.summary.entries == len(log)

    # a rotation with a task tag, or naming its own key as the new one, is malformed
    for extra, swap in (([["task", first]], {}), ([], {"new_key": original})):
        tags = [[t[0], swap.get(t[0], t[1])] for t in rotation["tags"]] + extra
        bad = old.sign_event(3910, rotation["content"], tags, rotation["created_at"])
        entry, problems = parse_entry(bad, original, AuditKinds())
        assert entry is not None and entry.op == "KeyRotated"
        assert problems and {f.kind for f in problems} == {FindingKind.MALFORMED}, problems

    # (b) a rebuild from the original key reproduces the tasks and ends on the new key
    async with new_database(database_kind, tmp_path / "rebuilt") as url:
        other = await open_stack(stack_settings(tmp_path / "other", url))
        try:
            report = await rebuild_from_entries(
                other.services.store, reversed(log), operator_pubkey=original
            )
            assert report.operator_pubkey == new.pubkey_hex
            assert report.tasks == 2 and report.entries == len(log)
            assert await _states(other) == states == {first: "PAID", second: "PAID"}
            assert await read_log(other) == log
        finally:
            await close_stack(other)

    # (c) an entry after the rotation re-signed by the old key
    stale = old.sign_event(later["kind"], later["content"], later["tags"], later["created_at"])
    result = audit_log([*log, stale], original)
    assert [(f.kind, f.location.gseq, f.event_ids) for f in result.findings] == [
        (FindingKind.WRONG_AUTHOR, r + 1, (stale["id"],))
    ]
    replaced = [*log[: r + 1], stale]
    assert {f.kind for f in audit_log(replaced, original).findings} == {FindingKind.WRONG_AUTHOR}
    for entries in ([*log, stale], replaced):
        with pytest.raises(LogRejected, match="not by the operator key"):
            await _rebuild(tmp_path, database_kind, entries, original)

    # (d) a rotation forged by a stranger, and the entry it would allow
    stranger = NostrKeys.generate()
    g = len(log)
    body = {
        "event": {
            "at": log[-1]["created_at"],
            "new_key": stranger.pubkey_hex,
            "old_key": new.pubkey_hex,
            "type": "KeyRotated",
        },
        "request": None,
        "v": 1,
    }
    forged_tags = [
        ["op", "KeyRotated"], ["gseq", str(g)], ["o", str(g)], ["gprev", log[-1]["id"]],
        ["new_key", stranger.pubkey_hex], ["old_key", new.pubkey_hex],
    ]  # fmt: skip
    content = json.dumps(body, separators=(",", ":"), sort_keys=True)
    forged = stranger.sign_event(3910, content, forged_tags, log[-1]["created_at"])
    after = stranger.sign_event(
        3910, later["content"], [["gseq", str(g + 1)], ["o", str(g + 1)]], log[-1]["created_at"]
    )
    result = audit_log([*log, forged, after], original)
    assert [(f.kind, f.location.gseq) for f in result.findings] == [
        (FindingKind.WRONG_AUTHOR, g),
        (FindingKind.WRONG_AUTHOR, g + 1),
    ]
    with pytest.raises(LogRejected, match="not by the operator key"):
        await _rebuild(tmp_path, database_kind, [*log, forged], original)

    # the writer refuses a rotation by a key that no longer signs the log
    await _refused_stale_rotation(settings, old)


async def _rebuild(tmp_path: Path, kind: str, entries: list[dict[str, Any]], operator: str) -> None:
    async with new_database(kind, tmp_path / "refused") as url:
        other = await open_stack(stack_settings(tmp_path / "refused-data", url))
        try:
            await rebuild_from_entries(other.services.store, entries, operator_pubkey=operator)
        finally:
            await close_stack(other)


async def _refused_stale_rotation(settings: Settings, old: NostrKeys) -> None:
    stack = await open_stack(settings)
    try:
        signer = LocalSigner(old, allowed_kinds=frozenset({3910}))
        with pytest.raises(ValueError, match="the log is signed by"):
            async with stack.services.store.transaction() as tx:
                await record_rotation(
                    tx.session,
                    signer,
                    NostrKeys.generate().pubkey_hex,
                    kind=3910,
                    clock=lambda: 2e9,
                    lock=False,
                )
    finally:
        await close_stack(stack)


async def test_rotate_fails_before_rotating_without_a_database(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        keystore="file",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'db.sqlite3'}",
    )
    before = init_key_store(settings).operator_pubkey
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
        await rotate_operator(settings)
    store = open_key_store(settings)
    try:
        assert load_operator_keys(store, settings.data_dir).pubkey_hex == before
    finally:
        close_key_store(store)


@pytest.mark.slow
async def test_audit_and_rebuild_follow_the_rotation_when_reading_relays(
    tmp_path: Path, database_url: str, database_kind: str
) -> None:
    """The tools fetch by the original key, then by each key a rotation hands the log to."""
    import asyncio
    import sys

    from taskhold.nostr.embedded import EmbeddedRelay
    from taskhold.nostr.relays import RelayPool

    settings = stack_settings(tmp_path, database_url)
    stack = await open_stack(settings)
    try:
        original = stack.services.signer.get_public_key()
        await _paid_task(stack)
    finally:
        await close_stack(stack)
    await rotate_operator(settings)
    stack = await open_stack(settings, world=stack.world)
    try:
        await _paid_task(stack)
        log = await read_log(stack)
    finally:
        await close_stack(stack)
    assert len({e["pubkey"] for e in log}) == 2

    relay = EmbeddedRelay(tmp_path / "relay")
    url = await relay.start()
    pool = RelayPool()
    try:
        await pool.connect([url])
        for event in log:
            assert (await pool.publish(event))[url] is None

        async def run(*args: str) -> tuple[int, str, str]:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "taskhold.cli", *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), timeout=180)
            return int(process.returncode or 0), out.decode(), err.decode()

        code, out, err = await run("audit", "--relay", url, "--operator", original, "--json")
        assert code == 0, out + err
        assert json.loads(out)["summary"]["entries"] == len(log)
        async with new_database(database_kind, tmp_path / "rebuilt") as fresh:
            code, out, err = await run(
                "rebuild", "--relay", url, "--operator", original, "--data-dir",
                str(tmp_path / "other"), "--database-url", fresh, "--json",
            )  # fmt: skip
            assert code == 0, err
            assert json.loads(out)["entries"] == len(log)
    finally:
        await pool.close()
        await relay.stop()
