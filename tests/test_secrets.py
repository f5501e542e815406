"""No preimage (or key) in any response, log line or database row before settlement."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import inspect, text
from support.deposit_flows import give_worker_wallet_money, locked_deposit, stranger
from support.notices import gift_wraps, opened_by
from support.stacks import Stack, close_stack, open_stack, stack_settings
from support.task_flows import created, funded

from taskhold.escrow.deposits import deposit_label
from taskhold.nostr import NostrKeys


async def _database_dump(stack: Stack) -> str:
    """Every row of every table the database holds, found by reflection so that a new table is
    covered without anyone remembering to list it here."""
    parts = []
    async with stack.services.store.transaction() as tx:
        connection = await tx.session.connection()
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert {"audit_log", "log_entries", "outbox", "request_events", "tasks"} <= set(tables)
        for table in sorted(tables):
            rows = (await tx.session.execute(text(f'SELECT * FROM "{table}"'))).all()
            parts.append(table + ": " + "\n".join(_render(value) for r in rows for value in r))
    return "\n".join(parts)


def _render(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return " ".join([raw.hex(), base64.b64encode(raw).decode(), raw.decode("latin-1")])
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _spellings(secret_hex: str) -> list[str]:
    """The ways a 32-byte secret shows up in text: hex either case, base64 and base64url."""
    raw = bytes.fromhex(secret_hex)
    b64 = base64.b64encode(raw).decode()
    b64url = base64.urlsafe_b64encode(raw).decode()
    return [secret_hex.lower(), secret_hex.upper(), b64.rstrip("="), b64url.rstrip("=")]


def _leaks(secret_hex: str, text_: str) -> list[str]:
    return [spelling for spelling in _spellings(secret_hex) if spelling in text_]


async def test_the_preimage_is_nowhere_at_any_step_before_settlement(
    stack: Stack, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After every transition and right before the node settles, the preimage (hex, base64) is
    in no response, no log line and no row of any table; the key file never is."""
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    stack.http.event_hooks["response"].append(keep)
    caplog.set_level(logging.DEBUG)
    employer, worker = stack.client(), stack.client()
    key_file = (stack.settings.data_dir / "keys" / "preimage.key").read_bytes().hex()
    checked: list[str] = []
    leaked: list[tuple[str, str, list[str]]] = []
    with structlog.testing.capture_logs() as logs:

        async def no_leak(step: str) -> None:
            """Collected, not raised: the engine would swallow an assertion as a failed step."""
            said = "\n".join(bodies) + json.dumps(logs, default=str) + caplog.text
            for where, found in [
                ("a response or log line", _leaks(preimage, said)),
                ("the database", _leaks(preimage, await _database_dump(stack))),
            ]:
                if found:
                    leaked.append((step, where, found))
            checked.append(step)

        task = await created(stack, employer)
        task_id = task["task_id"]
        preimage = stack.services.keys.derive_preimage(task_id, 1).hex()
        await no_leak("after create")
        funding = (await employer.request_funding(task_id))["funding"]
        await no_leak("after the funding request")
        await stack.world.employer.send_payment(funding["payment_request"])
        await stack.settle_engine(1)
        assert (await employer.get_task(task_id))["state"] == "FUNDED"
        await no_leak("after funding")
        await worker.claim(task_id)
        await no_leak("after claim")
        invoice = await stack.world.worker.create_invoice(
            task["payout_msat"], expiry_seconds=86_400
        )
        await worker.submit_proof(task_id, {"url": "https://example.org/haiku"}, invoice)
        await no_leak("after the proof")
        await employer.approve(task_id)
        await no_leak("after approval")

        async def at_engine_points(point: str) -> None:
            if point == "after_payout":
                await no_leak(point)

        real_settle = stack.world.escrow.settle_invoice

        async def settle_invoice(preimage_bytes: bytes) -> None:
            await no_leak("right before the node settles")
            await real_settle(preimage_bytes)

        monkeypatch.setattr(stack.world.escrow, "settle_invoice", settle_invoice)
        stack.services.engine.ctx.fault_hook = at_engine_points
        await stack.settle_engine()

    assert leaked == []
    assert checked[-2:] == ["after_payout", "right before the node settles"]
    final = await employer.get_task(task_id)
    assert final["state"] == "PAID"
    assert final["preimage"] == preimage  # public once settled, as the settlement reveals it
    # The scan is not blind: now that the preimage is public it finds it.
    assert _leaks(preimage, await _database_dump(stack))
    everything = "\n".join(bodies) + json.dumps(logs, default=str) + caplog.text
    assert key_file not in everything


async def test_key_store_repr_does_not_show_the_key(stack: Stack) -> None:
    key_file = (stack.settings.data_dir / "keys" / "preimage.key").read_bytes().hex()
    assert key_file not in repr(stack.services.keys)
    assert key_file not in repr(stack.services)


async def test_a_deposit_preimage_stays_secret_unless_forfeited_and_paid_out(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A returned deposit never reveals its preimage; a forfeited one only with its payout."""
    stack = await open_stack(stack_settings(tmp_path, database_url, pow_max_bits=8))
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    stack.http.event_hooks["response"].append(keep)
    caplog.set_level(logging.DEBUG)
    try:
        await give_worker_wallet_money(stack)
        employer, worker = stack.client(), stranger(stack)
        with structlog.testing.capture_logs() as logs:
            task = await funded(stack, employer)
            await locked_deposit(stack, worker, task["task_id"], stack.world.worker)
            await worker.claim(task["task_id"])
            invoice = await stack.world.worker.create_invoice(
                task["payout_msat"], expiry_seconds=86_400
            )
            await worker.submit_proof(task["task_id"], {"url": "https://example.org/h"}, invoice)
            await employer.approve(task["task_id"])
            await stack.settle_engine()
            dump = await _database_dump(stack)
        label = deposit_label(task["task_id"], worker.pubkey_hex)
        preimage = stack.services.keys.derive_preimage(label, 0).hex()
        final = await employer.get_task(task["task_id"])
    finally:
        await close_stack(stack)
    assert final["state"] == "PAID"
    assert final["deposits"][0]["state"] == "RETURNED"
    everything = "\n".join(bodies) + json.dumps(logs, default=str) + caplog.text + dump
    assert (
        hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == final["deposits"][0]["payment_hash"]
    )
    assert preimage not in everything


async def test_notifications_carry_no_secret_and_no_task_content(
    open_custom: Any, keys: dict[str, NostrKeys]
) -> None:
    """Every NIP-17 notification of a run (fund, claim, review, rejection, dispute), opened by
    its addressee, names only the task, the action and a deadline: no preimage, key, invoice,
    description, title, proof or reason."""
    stack: Stack = await open_custom(arbiters=[keys["arbiter"].pubkey_hex])
    employer, worker = stack.client(keys["employer"]), stack.client(keys["worker"])
    marker = secrets.token_hex(8)
    task = await created(
        stack, employer, title=f"title {marker}", description=f"description {marker}"
    )
    task_id = task["task_id"]
    funding = (await employer.request_funding(task_id))["funding"]
    await stack.world.employer.send_payment(funding["payment_request"])
    await stack.settle_engine(1)
    await worker.claim(task_id)
    invoice = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    await worker.submit_proof(task_id, {"url": f"https://example.org/{marker}"}, invoice)
    await employer.reject(task_id, f"reason {marker}")
    await worker.open_dispute(task_id, f"dispute {marker}")
    await stack.client(keys["arbiter"]).resolve_dispute(task_id, "worker", f"note {marker}")
    await stack.settle_engine()
    assert (await employer.get_task(task_id))["state"] == "PAID"

    messages = [m for k in keys.values() for m in opened_by(k, await gift_wraps(stack))]
    assert len(messages) == 6
    said = json.dumps([[m.content, m.tags] for m in messages])
    preimage = stack.services.keys.derive_preimage(task_id, 1).hex()
    key_file = (stack.settings.data_dir / "keys" / "preimage.key").read_bytes().hex()
    operator_key = (stack.settings.data_dir / "keys" / "operator.key").read_text().strip()
    assert _leaks(preimage, said) == [] and _leaks(operator_key, said) == []
    assert key_file not in said and marker not in said
    assert invoice not in said and funding["payment_request"] not in said
    assert {tag[0] for m in messages for tag in m.tags} <= {"p", "task", "action", "deadline"}
