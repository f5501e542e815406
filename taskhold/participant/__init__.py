"""A participant's own tools (issue #18): the ``taskhold task`` command an employer or a worker
runs over :class:`~taskhold.client.TaskholdClient`, with the participant's key and wallet.

| module | job |
|---|---|
| ``identity`` | who signs: a key file (0600, nsec or hex), or a NIP-46 remote signer (not yet) |
| ``wallets`` | the participant's own wallet: pays a hold invoice, issues a payout invoice |
| ``cli`` | ``taskhold task create|fund|claim|proof|approve|…``: one command per client call |

Nothing here is the escrow: every rule is the server's, and a refusal is shown as it came.
"""
