"""A Boltz-API-v2-compatible swap server: TEST INFRASTRUCTURE for the devnet, not for production.

The real Boltz backend cannot run here (it needs Bitcoin Core with ZMQ, a Rust sidecar and a newer
Node than the project's machines have; see the reference notes), so this package plays Boltz's
side of submarine and reverse swaps over the public API v2 shapes, so that taskhold's client
cannot tell it apart from a real Boltz endpoint. It uses its own Lightning node (any
:class:`~taskhold.lightning.base.LightningBackend`), its own per-swap keys and real taproot swap
outputs through :class:`~.chain.SwapChain` (btcd on the devnet, an in-memory chain in tests).

It holds coins of its own on the devnet only; it has no authentication, no fee market and no
rate limits, and must never face real money. Only what taskhold uses is offered: BTC/BTC
submarine swaps created with an invoice (not with ``preimageHash`` first) and reverse swaps; no
chain swaps, webhooks, restore/rescue or 0-conf (``maximalZeroConf`` is 0). Per-swap keys are
kept in the record files, which a real service would hold in a signer.

| module | job |
|---|---|
| ``chain`` | the SwapChain protocol the server sees the chain through |
| ``config`` | SwapServerConfig: network, fees, limits, timeouts (re-exported by ``app``) |
| ``lifecycle`` | status values and the allowed transitions, as one table |
| ``records`` | the swap records (with the server's per-swap keys), one JSON file per swap |
| ``signing`` | the server's half of MuSig2 and its script-path claims and refunds |
| ``watcher`` | the background loop that moves swaps along |
| ``app`` | the FastAPI app under /v2 (+ /v2/ws) and the devnet-only admin endpoint |
| ``btcd_chain`` | SwapChain over btcd (the devnet) |
| ``__main__`` | ``python -m taskhold.devnet.swap_server --devnet-dir D`` |
"""
