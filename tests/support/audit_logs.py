"""Real logs for the auditor's tests: tasks run through taskhold on the simulator, every path,
then the signed entries read back from ``log_entries`` in ``gseq`` order."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support.stacks import Stack
from support.task_flows import funded, read_log, submitted, tag
from taskhold.demo import audit_stored_log as audit_stored_log  # the demo's, for the tests
from taskhold.nostr import NostrKeys


@dataclass
class RealLog:
    stack: Stack
    operator: str
    entries: list[dict[str, Any]]

    def sign(self, content: str, tags: list[list[str]], created_at: int) -> dict[str, Any]:
        """An entry signed by the operator key, as the writer would sign one."""
        return self.stack.services.signer.sign_event(3910, content, tags, created_at)

    def entry(self, op: str, nth: int = 0) -> dict[str, Any]:
        """The ``nth`` entry whose op is ``op``."""
        return [e for e in self.entries if tag(e, "op") == op][nth]

    def resigned(self, gseq: int, change: Callable[[Draft], None]) -> list[dict[str, Any]]:
        """The log with entry ``gseq`` changed, and it and every later entry re-signed by the
        operator with ``prev``/``gprev`` pointing at the new ids: consistent in every respect
        but the change, as a dishonest operator would publish it."""
        new_ids: dict[str, str] = {}
        log = self.entries[:gseq]
        for event in self.entries[gseq:]:
            tags = [
                [t[0], new_ids.get(t[1], t[1]), *t[2:]] if t[0] in ("prev", "gprev") else list(t)
                for t in event["tags"]
            ]
            draft = Draft(tags, event["content"], event["created_at"])
            if len(log) == gseq:
                change(draft)
            signed = self.sign(draft.content, draft.tags, draft.created_at)
            new_ids[event["id"]] = signed["id"]
            log.append(signed)
        return log


@dataclass
class Draft:
    tags: list[list[str]]
    content: str
    created_at: int

    def set_tag(self, name: str, value: str) -> None:
        for t in self.tags:
            if t[0] == name:
                t[1] = value
                return
        raise KeyError(name)

    def edit_content(self, edit: Callable[[dict[str, Any]], None]) -> None:
        body = json.loads(self.content)
        edit(body)
        self.content = canonical_json(body)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def run_every_path(stack: Stack, rounds: int = 1) -> None:
    """Tasks through every path the simulator offers: paid on approval, paid after a failed
    payout and a new invoice, paid and refunded by an arbiter, refunded on cancel, cancelled
    as a draft, expired unpaid, released when the review window ran out.

    For the review window time is shifted: the engine, the simulated network and the clients
    share one clock with an offset (the log's own ``created_at`` keeps the real clock)."""
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    stack.services.engine.ctx.clock = clock
    stack.world.network.clock = clock
    arbiter = stack.client()
    arbiter._clock = clock
    stack.services.settings.arbiters = [arbiter.pubkey_hex]
    for n in range(rounds):
        employer, worker = stack.client(), stack.client()
        employer._clock = worker._clock = clock
        deadline = int(clock()) + 3600

        task = await submitted(stack, employer, worker, title=f"approved {n}", deadline_at=deadline)
        await employer.approve(task["task_id"])
        await stack.settle_engine()

        task = await submitted(stack, employer, worker, title=f"retried {n}", deadline_at=deadline)
        stack.world.network.fail_next_payments(1)
        await employer.approve(task["task_id"])
        await stack.run_pass()
        fresh = await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
        await worker.update_payout_invoice(task["task_id"], fresh)
        stack.services.engine._retry_at.clear()
        await stack.settle_engine()

        for winner in ("worker", "employer"):
            title = f"disputed {winner} {n}"
            task = await submitted(stack, employer, worker, title=title, deadline_at=deadline)
            await employer.reject(task["task_id"], "line one has six syllables")
            await worker.open_dispute(task["task_id"], "it has five")
            await arbiter.resolve_dispute(task["task_id"], winner, "counted")
            await stack.settle_engine()

        task = await funded(stack, employer, title=f"refunded {n}", deadline_at=deadline)
        await employer.cancel(task["task_id"], reason="no longer needed")
        await stack.settle_engine()

        draft = await employer.create_task(f"draft {n}", "", 100_000, deadline)
        await employer.cancel(draft["task_id"])

        unpaid = await employer.create_task(f"unpaid {n}", "", 100_000, deadline)
        funding = (await employer.request_funding(unpaid["task_id"]))["funding"]
        await stack.world.escrow.cancel_invoice(bytes.fromhex(funding["payment_hash"]))
        await stack.settle_engine()

        task = await submitted(stack, employer, worker, title=f"silent {n}", deadline_at=deadline)
        await stack.run_pass()
        offset[0] += stack.settings.default_review_window_s + 1
        await stack.settle_engine()


async def read_real_log(stack: Stack) -> RealLog:
    """The log the stack's operator has written so far."""
    return RealLog(stack, stack.services.signer.get_public_key(), await read_log(stack))


async def build_real_log(stack: Stack, rounds: int = 1) -> RealLog:
    await run_every_path(stack, rounds)
    return await read_real_log(stack)


def request_signed_by(
    keys: NostrKeys, edit: Callable[[dict[str, Any]], None]
) -> Callable[[Draft], None]:
    """A change that replaces the entry's embedded request by one ``keys`` signed (same kind,
    tags and time) with ``edit`` applied to its content, and points the ``e`` tag at it: how an
    operator would embed a request a key of its own choosing signed."""

    def change(draft: Draft) -> None:
        body = json.loads(draft.content)
        request = body["request"]
        content = json.loads(request["content"])
        edit(content)
        signed = keys.sign_event(
            request["kind"], json.dumps(content), request["tags"], request["created_at"]
        )
        body["request"] = signed
        draft.content = canonical_json(body)
        draft.tags = [
            ["e", signed["id"], t[2] if len(t) > 2 else "", signed["pubkey"]] if t[0] == "e" else t
            for t in draft.tags
        ]

    return change


def without_payout_preimage(draft: Draft) -> None:
    """The settlement written in the form from before the payout proof."""
    draft.tags = [t for t in draft.tags if t[0] != "payout_preimage"]
    draft.edit_content(lambda body: body["event"].pop("payout_preimage_hex"))


def paid_with(preimage: str, paid_hash: str) -> Callable[[Draft], None]:
    """A change that has the settlement name ``paid_hash`` paid with ``preimage`` (hex)."""

    def change(draft: Draft) -> None:
        draft.set_tag("payout_hash", paid_hash)
        draft.set_tag("payout_preimage", preimage)
        draft.edit_content(
            lambda body: body["event"].update(
                payout_payment_hash_hex=paid_hash, payout_preimage_hex=preimage
            )
        )

    return change


def forged_payment() -> tuple[str, str]:
    """A preimage of the operator's own making and its payment hash (hex)."""
    preimage = os.urandom(32)
    return preimage.hex(), hashlib.sha256(preimage).hexdigest()


def forged(
    log: RealLog, *changes: tuple[str, int, Callable[[Draft], None]]
) -> list[dict[str, Any]]:
    """The log with each ``(op, nth, change)`` applied in turn to the ``nth`` entry of ``op``,
    re-signed as ``RealLog.resigned`` does."""
    for op, nth, change in changes:
        gseq = int(tag(log.entry(op, nth), "gseq") or "")
        log = RealLog(log.stack, log.operator, log.resigned(gseq, change))
    return log.entries
