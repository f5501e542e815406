"""The offline cryptography of Boltz submarine and reverse swaps (issue #14): no I/O here.

A swap's on-chain side is a taproot output whose key path is a 2-of-2 MuSig2 of Boltz and the
client, with a claim leaf (preimage) and a refund leaf (timeout) as the unilateral fallback.
The client (the employer's or the worker's) builds and signs its own swap spends with these
modules: taskhold never holds the employer's refund key or the worker's claim key, it only
checks that a swap's facts produce the address it is shown.

| module | job |
|---|---|
| ``errors`` | ``SwapError`` and its three kinds: bad input, never a fault |
| ``musig`` | MuSig2 (BIP-327) over coincurve's libsecp256k1: key aggregation, single-use nonces,
  partial signatures |
| ``tree`` | the swap tree: leaves, BIP-341 hashes, the tweaked output key, control blocks,
  bech32m addresses |
| ``tx`` | spending a swap output: key path (MuSig2 aggregate), script-path refund after the
  timeout, script-path reverse claim with the preimage |
| ``cooperative`` | the client's half of Boltz's MuSig2 signing: answering Boltz's submarine
  claim (after the preimage check), and cooperative refunds and reverse claims |
| ``fees`` | a swap's figures computed by the client (``FeeQuote``), checked against Boltz's |
| ``timing`` | whether a swap's timeouts fit the hold invoice, the task and the payout bound |
"""
