"""The operator's console: ``taskhold admin``.

| module | job |
|---|---|
| ``controls`` | pause and resume intake, ask the running engines for a pass; each journaled |
| ``stuck`` | escrows near their hold's margin, payouts that keep failing, with the reason |
| ``cli`` | ``taskhold admin pause|resume|status|stuck|reconcile`` |

Every switch lives in the database (``taskhold.store.controls``), never in a process: the
console reaches the running servers through it, whichever replica serves a request or runs a
tick, and nothing is exposed over HTTP. Whoever can run the console can already write the
database, so it needs no other authentication; every action is written to the security journal
with its actor (``admin:<os user>``) and what changed.
"""
