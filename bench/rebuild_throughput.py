"""Rebuild throughput: verify and replay N signed log entries into a fresh SQLite (and, when
``TASKHOLD_TEST_PG_URL`` names a server, PostgreSQL) database, next to bare coincurve Schnorr
verification of every signature of the same log (entries and embedded requests, ids recomputed)
in the same run.

The log is made here with taskhold's own pure parts (the state machine, the entry builders,
nostr-sdk signing), as the writer makes it: 7 entries per task (create, fund, accepted, claim,
proof, approve, release), participant requests embedded and signed (the task id is the create
request's id, the proof is kind 3911: ``taskhold audit`` finds the log clean). Making it is not
timed. ``measure(quick=True)`` rebuilds 10,003 entries and extrapolates to 100,000.

    python bench/rebuild_throughput.py [--entries 100000] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import new_database
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
        create = employer.sign_event(3912, json.dumps({"serial": serial}), [["op", "create"]], at)
        task_id = create["id"]
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
            request = create if op == "create" else None
            if signer is not None and op != "create":
                kind = 3911 if op == "proof" else 3912
                request = signer.sign_event(kind, "{}", [["op", op], ["task", task_id]], at)
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


def embedded_requests(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    requests = (json.loads(event["content"]).get("request") for event in events)
    return [request for request in requests if request]


def bare_verify(events: list[dict[str, Any]]) -> float:
    """Seconds to recompute each id (NIP-01) and check each signature, nothing else."""
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


async def rebuild(events: list[dict[str, Any]], operator: str, kind: str = "sqlite") -> float:
    """Seconds for ``rebuild_from_entries`` into a fresh, migrated database of ``kind``."""
    directory = Path(tempfile.mkdtemp(prefix="taskhold-rebuild-bench-"))
    async with new_database(kind, directory) as url:
        engine = create_engine(url)
        try:
            await migrate(engine)
            started = time.perf_counter()
            report = await rebuild_from_entries(Store(engine), events, operator_pubkey=operator)
            elapsed = time.perf_counter() - started
        finally:
            await engine.dispose()
    assert report.entries == len(events), report
    return elapsed


def measure(*, quick: bool, entries: int | None = None, pg: bool = True) -> dict[str, object]:
    """Rebuild seconds on SQLite (and PostgreSQL), beside bare verification of every signature
    of the same log in the same run; ``quick`` rebuilds 10,003 entries, else 100,002."""
    wanted = entries or (10_003 if quick else 100_002)
    n = wanted - wanted % 7
    made = time.perf_counter()
    events = make_log(n)
    print(f"rebuild: made {len(events)} signed entries in {time.perf_counter() - made:.1f} s",
          file=sys.stderr)  # fmt: skip
    every = events + embedded_requests(events)
    bare_s = bare_verify(every)
    figures: dict[str, object] = {
        "entries": len(events),
        "signatures": len(every),
        "bare_verify_s": round(bare_s, 2),
        "bare_verify_per_s": round(len(every) / bare_s),
    }
    kinds = ["sqlite"] + (["postgresql"] if pg and os.environ.get("TASKHOLD_TEST_PG_URL") else [])
    for kind in kinds:
        seconds = asyncio.run(rebuild(events, events[0]["pubkey"], kind))
        print(f"rebuild: {kind} {seconds:.1f} s", file=sys.stderr)
        prefix = "" if kind == "sqlite" else "pg_"
        figures[f"{prefix}seconds"] = round(seconds, 2)
        figures[f"{prefix}per_s"] = round(len(events) / seconds)
        figures[f"{prefix}ratio"] = round(bare_s / seconds, 3)
        figures[f"{prefix}seconds_100k"] = round(seconds * 100_000 / len(events), 1)
    figures["seconds_100k_target"] = 60
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_002)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    figures = measure(quick=False, entries=args.entries, pg=not args.no_pg)
    for name, value in figures.items():
        print(f"  {name:22} {value}")


if __name__ == "__main__":
    main()
