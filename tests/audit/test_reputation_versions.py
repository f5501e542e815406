"""The independent auditor recomputes scores of every version from the signed public record
alone: version 2 with the deal's counters (a revoked squatter, a rejection an arbiter upheld),
version 1 assertions published before the bump by version 1's rules, and it flags a published
score the record does not give."""

from __future__ import annotations

from typing import Any

from support.log_builder import LogBuilder, pubkey

from taskhold.audit.findings import FindingKind
from taskhold.audit.scores import score_findings
from taskhold.nostr import NostrKeys
from taskhold.reputation.metrics import Indexer
from taskhold.reputation.score import assertion_tags, score_card

E, W, SQUATTER = pubkey("employer"), pubkey("worker"), pubkey("squatter")


def signed_log(operator: NostrKeys) -> list[dict[str, Any]]:
    log = LogBuilder(operator=operator.pubkey_hex)
    task = log.create(E)
    log.fund(task)
    log.claim(task, SQUATTER)
    log.revoke(task, E, SQUATTER)
    log.claim(task, W)
    log.proof(task, W)
    log.reject(task, E)
    log.rejection_lapsed(task)
    log.release(task)
    log.paid_task(E, W)
    return [
        operator.sign_event(e["kind"], e["content"], e["tags"], e["created_at"])
        for e in log.entries
    ]


def assertions(
    entries: list[dict[str, Any]], operator: NostrKeys, reputation: NostrKeys, version: str
) -> list[dict[str, Any]]:
    indexer = Indexer(operator_pubkey=operator.pubkey_hex, version=version)
    indexer.add_many(entries)
    return [
        reputation.sign_event(
            30382, "", assertion_tags(score_card(indexer, who), operator.pubkey_hex), 1_800_000_000
        )
        for who in (E, W, SQUATTER)
    ]


def _tag(event: dict[str, Any], name: str) -> str:
    return next(t[1] for t in event["tags"] if t[0] == name)


def test_the_auditor_recomputes_both_versions_and_flags_a_tampered_one() -> None:
    operator, reputation = NostrKeys.generate(), NostrKeys.generate()
    entries = signed_log(operator)
    old = assertions(entries, operator, reputation, "1")
    new = assertions(entries, operator, reputation, "2")
    assert _tag(new[0], "employer_rejections_overturned") == "1"
    assert _tag(new[2], "worker_revocations") == "1"

    def findings(published: list[dict[str, Any]]) -> tuple[int, list[Any]]:
        return score_findings(
            entries,
            published,
            [],
            operator=operator.pubkey_hex,
            reputation=reputation.pubkey_hex,
        )

    assert findings(old + new) == (6, [])

    tags = [
        ["worker_revocations", "0"] if t[0] == "worker_revocations" else t for t in new[2]["tags"]
    ]
    hidden = reputation.sign_event(30382, "", tags, 1_800_000_001)
    checked, found = findings([*old, new[0], new[1], hidden])
    assert checked == 6
    assert [f.kind for f in found] == [FindingKind.SCORE_MISMATCH]
    assert "worker_revocations published '0'" in found[0].detail
