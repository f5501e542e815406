"""Reputation indexer throughput and memory over a synthetic public log.

Builds a log of ``--entries`` kind-3910 entries shaped as ``docs/public-log.md`` describes them
(tags task/op/gseq/o, content {"event", "request", "v"}), UNSIGNED: the indexer takes signatures
as its caller checked them, so signing a million events would only measure nostr-sdk. Tasks
follow the real lifecycle (created, funding requested and accepted, claimed, proof, approved,
released; about one in eight refunded after a dispute or for lack of proof, one in sixteen never
funded) between 5,000 employers and 20,000 workers. Entries are generated in chunks before the
clock starts for each chunk, so the figure is the indexer's own cost: JSON parsing of each
entry's content and the per-role counters. The baseline, timed on the same chunks in the same
run, is parsing each entry's content and nothing else. Then every subject is scored once.

    python bench/reputation_indexer.py [--entries 1000000] [--shuffle 0] [--tracemalloc]

``--shuffle N`` delivers each chunk in random order within windows of N entries (relay
delivery order), which exercises the indexer's reordering buffer. ``--tracemalloc`` also
reports Python's own count of the indexer's peak allocations (slower).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import random
import resource
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

from taskhold.reputation.metrics import Indexer
from taskhold.reputation.score import score_card

OPERATOR = "f" * 64
CHUNK = 50_000


def _key(prefix: str, n: int) -> str:
    return hashlib.sha256(f"{prefix}{n}".encode()).hexdigest()


def synthetic_log(entries: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Entries in gseq order; tasks interleave a little, as concurrent tasks do."""
    rng = random.Random(seed)
    employers = [_key("employer", i) for i in range(5_000)]
    workers = [_key("worker", i) for i in range(20_000)]
    now = 1_700_000_000
    gseq = 0
    task_n = 0
    while gseq < entries:
        task_n += 1
        task_id = _key("task", task_n)
        employer = employers[min(int(rng.paretovariate(1.2)) - 1, len(employers) - 1)]
        worker = workers[rng.randrange(len(workers))]
        amount = rng.choice((10_000_000, 50_000_000, 150_000_000, 1_000_000_000))
        fate = rng.random()
        steps: list[dict[str, Any]] = [
            {"type": "TaskCreated", "actor": employer, "task_id": task_id, "amount_msat": amount},
            {"type": "FundingRequested", "actor": employer},
        ]
        if fate < 1 / 16:
            steps.append({"type": "FundingExpired", "actor": "system", "reason": "unpaid"})
        else:
            steps += [
                {"type": "FundingAccepted", "actor": "system", "amount_paid_msat": amount},
                {"type": "TaskClaimed", "actor": worker, "worker_pubkey": worker},
            ]
            if fate < 1 / 8:
                steps += [
                    {"type": "ProofSubmitted", "actor": worker},
                    {"type": "DisputeOpened", "actor": employer, "reason": "late"},
                    {"type": "DisputeResolved", "actor": "arb", "winner": "employer"},
                    {"type": "RefundCompleted", "actor": "system", "invoice_state": "CANCELED"},
                ]
            elif fate < 3 / 16:
                steps += [
                    {"type": "RefundOrdered", "actor": "system", "reason": "no proof"},
                    {"type": "RefundCompleted", "actor": "system", "invoice_state": "CANCELED"},
                ]
            else:
                steps += [
                    {"type": "ProofSubmitted", "actor": worker},
                    {"type": "SubmissionApproved", "actor": employer},
                    {"type": "ReleaseCompleted", "actor": "system"},
                ]
        for step in steps:
            if gseq >= entries:
                return
            now += rng.randrange(0, 30)
            yield {
                "id": f"{gseq:064x}",
                "pubkey": OPERATOR,
                "created_at": now,
                "kind": 3910,
                "tags": [
                    ["task", task_id],
                    ["op", step["type"]],
                    ["gseq", str(gseq)],
                    ["o", str(gseq)],
                ],
                "content": json.dumps(
                    {"event": {"at": now, **step}, "request": None, "v": 1},
                    separators=(",", ":"),
                ),
                "sig": "0" * 128,
            }
            gseq += 1


def _chunks(entries: int, shuffle: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(seed)
    chunk: list[dict[str, Any]] = []
    for entry in synthetic_log(entries, seed):
        chunk.append(entry)
        if len(chunk) == CHUNK:
            yield _shuffled(chunk, shuffle, rng)
            chunk = []
    if chunk:
        yield _shuffled(chunk, shuffle, rng)


def _shuffled(chunk: list[dict[str, Any]], window: int, rng: random.Random) -> list[Any]:
    if window <= 1:
        return chunk
    out: list[dict[str, Any]] = []
    for start in range(0, len(chunk), window):
        part = chunk[start : start + window]
        rng.shuffle(part)
        out += part
    return out


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(
    *, quick: bool, entries: int | None = None, shuffle: int = 0, seed: int = 1, trace: bool = False
) -> dict[str, float]:
    """Index a synthetic log and score every subject; the figures ``bench/run.py`` tabulates."""
    entries = entries or (100_000 if quick else 1_000_000)
    gc.collect()
    baseline = _rss_mib()
    if trace:
        tracemalloc.start()
    indexer = Indexer(operator_pubkey=OPERATOR)
    indexing_s = bare_s = 0.0
    for chunk in _chunks(entries, shuffle, seed):
        started = time.perf_counter()
        for entry in chunk:  # the baseline: only reading each entry's content, no counting
            json.loads(entry["content"])
        bare_s += time.perf_counter() - started
        started = time.perf_counter()
        indexer.add_many(chunk)
        indexing_s += time.perf_counter() - started
        del chunk
    assert indexer.head_gseq == entries - 1 and indexer.waiting == 0
    gc.collect()
    after_index = _rss_mib()
    subjects = indexer.subjects()
    started = time.perf_counter()
    scores = [score_card(indexer, subject).score for subject in subjects]
    scoring_s = time.perf_counter() - started
    figures = {
        "entries": entries,
        "indexing_s": indexing_s,
        "entries_per_s": entries / indexing_s,
        "baseline_entries_per_s": entries / bare_s,
        "ratio": bare_s / indexing_s,
        "scoring_s": scoring_s,
        "subjects": len(subjects),
        "subjects_per_s": len(subjects) / scoring_s,
        "scored_above_0": sum(1 for s in scores if s > 0),
        "rss_before_mib": baseline,
        "rss_after_mib": after_index,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if trace:
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        figures.update(traced_held_mib=held / 2**20, traced_peak_mib=peak / 2**20)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--shuffle", type=int, default=0, help="reorder within windows of N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    f = measure(
        quick=False,
        entries=args.entries,
        shuffle=args.shuffle,
        seed=args.seed,
        trace=args.tracemalloc,
    )
    order = f"shuffled within windows of {args.shuffle}" if args.shuffle > 1 else "gseq order"
    print(f"reputation indexer, synthetic log of {args.entries:,} UNSIGNED entries ({order})")
    print("  (entries are not signed: the indexer trusts its caller's signature checks)")
    print(
        f"  indexing   {f['indexing_s']:8.2f} s   {f['entries_per_s']:12,.0f} entries/s"
        + ("   (under tracemalloc)" if args.tracemalloc else "")
    )
    print(
        f"  baseline   {args.entries / f['baseline_entries_per_s']:8.2f} s   "
        f"{f['baseline_entries_per_s']:12,.0f} entries/s"
        "   (json.loads of each entry's content alone, same entries, same run)"
    )
    print(f"  ratio indexer/baseline throughput: {f['ratio']:.3f}")
    print(
        f"  scoring    {f['scoring_s']:8.2f} s   {f['subjects_per_s']:12,.0f} subjects/s"
        f"   ({f['subjects']:,} subjects, {f['scored_above_0']:,} above 0)"
    )
    print(
        f"  memory     RSS {f['rss_before_mib']:.0f} MiB before, {f['rss_after_mib']:.0f} MiB "
        f"after indexing (+{f['rss_after_mib'] - f['rss_before_mib']:.0f} MiB, freed input "
        f"chunks included), peak RSS {f['peak_rss_mib']:.0f} MiB"
    )
    if args.tracemalloc:
        print(
            f"  tracemalloc: {f['traced_held_mib']:.0f} MiB held by the indexer at the end, "
            f"{f['traced_peak_mib']:.0f} MiB peak (with one {CHUNK:,}-entry input chunk)"
        )


if __name__ == "__main__":
    main()
