"""Reputation: scores computed only from the public log, and the policies derived from them.

| module     | job                                                                   |
|------------|-----------------------------------------------------------------------|
| metrics    | the indexer: log entries and review records -> metrics per pubkey/role |
| counters   | what it counts per pubkey and role (``RoleMetrics``, ``Outcome``)       |
| review_rules | when a receipt and a review record count, across key rotations       |
| score      | the versioned score, the NIP-85 tags, ``recompute`` for auditors       |
| policy     | review window, proof of work, deposit: pure functions of a score      |
| receipts   | operator-signed review receipts, issued with a task's final entry     |
| reviews    | accepting a review: receipt check, ``rseq``, the kind-3914 record      |
| publish    | signing assertions (kind 30382) with the reputation key, when changed  |
| service    | keeps the indexer live over ``log_entries`` and ``reviews``           |
| gate       | what the write path asks: proof of work or a deposit, review windows  |
| restore    | which fetched receipts and review records a rebuild may write         |
| wiring     | building all of it once for the composition root                      |

``metrics``, ``counters``, ``review_rules`` and ``score`` use the standard library only, so the
independent auditor can call ``score.recompute`` without importing the writer; nothing is
imported here for the same reason.
"""
