"""The public log: writing it, publishing it, checkpointing it.

Every event taskhold publishes is signed and queued by ``writer.sign_and_queue`` inside the
database transaction that records what it says; the publisher then drains the outbox
to the relays. The Nostr codec underneath (kinds, tags, signing, the relay client) is
:mod:`taskhold.nostr`; the rebuild that replays the log is :mod:`taskhold.rebuild`.

| module | job |
|---|---|
| ``writer`` | ``sign_and_queue``; the per-task and operator-wide chained log entries and listings |
| ``publisher`` | the outbox publisher: every queued event reaches every relay, eventually |
| ``checkpoints`` | signed checkpoints of the log's head and the security journal's head |
| ``rotation`` | rotating the operator key together with its ``KeyRotated`` entry |
"""
