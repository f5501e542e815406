"""Rebuild throughput: verify and replay N signed log entries into a fresh SQLite database,
next to bare coincurve Schnorr verification of the same events in the same run.

The log is made here with taskhold's own pure parts (the state machine, the entry builders,
nostr-sdk signing), as the writer makes it: 7 entries per task (create, fund, accepted, claim,
proof, approve, release), participant requests embedded and signed. Making it is not timed.

    python bench/rebuild_throughput.py [--entries 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from coincurve import PublicKeyXOnly

from taskhold.nostr import NostrKeys
from taskhold.nostr.entries import entry_content, entry_tags, state_hash
from taskhold.rebuild.replay import rebuild_from_entries
from taskhold.store import Store, create_engine, migrate
from taskhold.store.codec import task_to_data
from taskhold.tasks import commands as c
from taskhold.tasks import decide, evolve
from taskhold.tasks.events import event_to_dict


def make_log(n_entries: int) -> list[dict[str, Any]]:
    operator = NostrKeys.generate()
    employer, worker = NostrKeys.generate(), NostrKeys.generate()
    log: list[dict[str, Any]] = []
    prev_global: str | None = None
    t0 = int(time.time()) - 86_400
    serial = 0
    while len(log) < n_entries:
        serial += 1
        at = t0 + serial
        task_id = hashlib.sha256(f"task-{serial}".encode()).hexdigest()
        preimage = hashlib.sha256(f"pre-{serial}".encode()).digest()
        steps: list[tuple[c.Command, NostrKeys | None, str]] = [
            (c.CreateTask(actor=employer.pubkey_hex, at=at, task_id=task_id, title=f"t{serial}",
                          description="bench", acceptance={}, amount_msat=100_000, fee_msat=1_000,
                          deadline_at=at + 3600, review_window_s=600, dispute_window_s=600,
                          deadline_policy="refund_unless_verified"), employer, "create"),
            (c.RequestFunding(actor=employer.pubkey_hex, at=at, funding_round=1,
                              payment_hash_hex=hashlib.sha256(preimage).hexdigest(),
                              payment_request="lnbcrt1bench", cltv_expiry_delta=40,
                              invoice_expires_at=at + 3600), employer, "fund"),
            (c.ConfirmFunding(actor="system", at=at, accepted_htlc_expiry_height=500,
                              amount_paid_msat=100_000), None, ""),
            (c.Claim(actor=worker.pubkey_hex, at=at), worker, "claim"),
            (c.SubmitProof(actor=worker.pubkey_hex, at=at, proof_event_id="0" * 64,
                           proof={"url": "https://example.org"}, payout_request="lnbcrt1w"),
             worker, "proof"),
            (c.Approve(actor=employer.pubkey_hex, at=at), employer, "approve"),
            (c.CompleteRelease(actor="system", at=at, preimage_hex=preimage.hex(),
                               payout_payment_hash_hex="11" * 32, payout_fee_msat=0), None, ""),
        ]  # fmt: skip
        task = None
        prev_task: str | None = None
        for command, signer, op in steps:
            request = None
            if signer is not None:
                tags = [["op", op]] + ([["task", task_id]] if op != "create" else [])
                request = signer.sign_event(3912, "{}", tags, at)
            for event in decide(task, command, frozenset()):
                task = evolve(task, event)
                data = event_to_dict(event)
                tags = entry_tags(
                    listing_coordinate=f"30402:{operator.pubkey_hex}:{task_id}", op=data["type"],
                    task_id=task_id, seq=task.version, prev_id=prev_task, gseq=len(log),
                    gprev_id=prev_global, state_digest=state_hash(task_to_data(task)),
                    request=request, participants=[employer.pubkey_hex], event=data,
                )  # fmt: skip
                entry = operator.sign_event(3910, entry_content(data, request), tags, at)
                log.append(entry)
                prev_task = prev_global = entry["id"]
    return log  # whole tasks: main() asks for a multiple of 7


def bare_verify(events: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for event in events:
        serial = json.dumps(
            [0, event["pubkey"], event["created_at"], event["kind"], event["tags"],
             event["content"]], separators=(",", ":"), ensure_ascii=False,
        ).encode()  # fmt: skip
        digest = hashlib.sha256(serial).digest()
        assert PublicKeyXOnly(bytes.fromhex(event["pubkey"])).verify(
            bytes.fromhex(event["sig"]), digest
        )
    return time.perf_counter() - started


async def rebuild(events: list[dict[str, Any]], operator: str) -> float:
    directory = Path(tempfile.mkdtemp(prefix="taskhold-rebuild-bench-"))
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'rebuilt.sqlite3'}")
    await migrate(engine)
    started = time.perf_counter()
    report = await rebuild_from_entries(Store(engine), events, operator_pubkey=operator)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    assert report.entries == len(events), report
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    n = args.entries - args.entries % 7
    made = time.perf_counter()
    events = make_log(n)
    print(f"made a log of {len(events)} signed entries in {time.perf_counter() - made:.1f} s"
          " (not timed below)")  # fmt: skip
    bare_s = bare_verify(events)
    rebuild_s = asyncio.run(rebuild(events, events[0]["pubkey"]))
    print(f"  bare coincurve verification  {len(events) / bare_s:10.0f} events/s ({bare_s:.2f} s)")
    print(f"  taskhold rebuild (verify, replay, write SQLite)"
          f" {len(events) / rebuild_s:10.0f} events/s ({rebuild_s:.2f} s)")  # fmt: skip
    print(f"  ratio rebuild/bare: {bare_s / rebuild_s:.3f}")
    print(f"  time to rebuild {len(events)} entries: {rebuild_s:.1f} s")


if __name__ == "__main__":
    main()
