"""The participants' on-chain rails (issue #14): run by the employer's and the worker's own
clients, never by taskhold, so neither side's keys pass through the escrow.

| module | job |
|---|---|
| ``wallet`` | what a client needs of its own on-chain wallet (send, a new address, broadcast) |
| ``spending`` | the lockup output of a swap, and the claim or refund spends, cooperative first |
| ``funding`` | an employer funds a task's hold invoice by a submarine swap, and refunds it |
| ``payout`` | a worker takes the reward on chain by a reverse swap, and claims it |
| ``fallback`` | the worker's client answers taskhold's on-chain offer after a failed payout |

Every flow shows the fees to the party who pays before it commits, checks the swap's clocks
against the task's, rebuilds the swap tree from its own facts, and stores the swap's keys and
preimage (``taskhold.boltz.records``) before a coin or an invoice moves.
"""
