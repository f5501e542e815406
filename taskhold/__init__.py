"""taskhold: non-custodial escrow for a task marketplace on Lightning hold invoices and Nostr.

One package per component; each imports only packages in the rows above it (bottom first here,
enforced by ``tests/test_layers.py``, where each layer's reason is written down).

| package | seed component | owns |
|---|---|---|
| ``errors``, ``settings``, ``logs`` | wiring (foundation) | refusals vs faults, settings, logging |
| ``tasks`` | Task Manager | the pure state machine: commands, events, the transition table |
| ``verification`` | Verification Service | proof checks against the task's acceptance spec |
| ``nostr`` | Nostr Publisher (codec) | kinds, entry tags, event signing and checks, relay client |
| ``envelope`` | REST API (request check) | the participant-signed request: shape, signature, time |
| ``lightning`` | Lightning backends | one module per backend behind one hold-invoice protocol |
| ``store`` | Database | SQLAlchemy models, the transaction-scoped repository, migrations |
| ``journal`` | Key custody (journal) | the hash-chained record of key uses and money moves |
| ``keys`` | Key custody (HSM) | key stores, preimage derivation, the event signer, operator key |
| ``publiclog`` | Nostr Publisher (log) | sign-and-queue, chained log entries, outbox, checkpoints |
| ``payments`` | Payment Coordinator | payout invoices, pay-then-settle |
| ``escrow`` | Escrow Engine | hold-invoice lifecycle, guardian, reconciliation |
| ``reputation`` | Reputation Indexer | scores from public log events, policies, reviews |
| ``moderation`` | wiring (operator policy) | blocked keys, delisted tasks, their signed list |
| ``actions`` | Task Manager (use cases) | one module per participant write, the op table |
| ``rebuild`` | Nostr Publisher (rebuild) | the database rebuilt from the public log |
| ``audit`` | Nostr Publisher (audit) | the independent auditor: shares no code with the writer |
| ``admin`` | wiring (operator console) | pause and resume intake, stuck escrows, one engine pass |
| ``web`` | Web pages | the board's and audit explorer's HTML and bundled JavaScript, as files |
| ``api`` | REST API | FastAPI routes, problem+json, rate limits, wire views |
| ``services`` | wiring | the composition root: ``build_services`` |
| ``server``, ``client``, ``devnet`` | wiring, tools | starts uvicorn; a client; regtest nodes |
| ``onchain``, ``participant`` | participant tools | on-chain swap flows; ``taskhold task`` |
| ``demo``, ``cli`` | wiring | one task end to end; the ``taskhold`` command |
"""
