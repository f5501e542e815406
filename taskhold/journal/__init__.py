"""The operator's security journal: an append-only, hash-chained record of every key use,
settle, cancel, payout, admin action and configuration change.

Not to be confused with :mod:`taskhold.audit`, the independent auditor of the *public* log: the
journal is private to the operator and proves, against its own checkpoints, that nobody rewrote
what the operator's keys and node did.

| module | job |
|---|---|
| ``chain`` | appending entries (``AuditLog``), the hash chain, verifying it |
| ``checkpoints`` | the payload of the journal's signed checkpoint, verifying checkpoints |
| ``cli`` | ``taskhold audit-log verify`` |
"""
