"""``python -m taskhold.devnet.swap_server --devnet-dir D``: the devnet's swap server process.

Started by ``taskhold devnet up`` once the swap node's channel is active, and stopped by ``down``
(SIGTERM: uvicorn finishes its requests and the app's lifespan stops its watcher). It plays Boltz
with the devnet's ``swap`` lnd node and btcd, listens on 127.0.0.1 at the layout's swap server
port, and keeps its swap records under ``D/swap-server``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import uvicorn

from taskhold.devnet.layout import HOST, Layout
from taskhold.devnet.swap_server.app import SwapServerConfig, build_app
from taskhold.devnet.swap_server.btcd_chain import SWAP_NODE, BtcdSwapChain
from taskhold.lightning.lnd import LndBackend
from taskhold.swaps.tree import Network


async def serve(devnet_dir: Path) -> None:
    """Serve until SIGTERM/SIGINT; the lnd and btcd clients are closed on the way out."""
    layout = Layout(devnet_dir)
    state = layout.load_state()
    if state is None:
        raise SystemExit(f"no devnet in {layout.data_dir}; run `taskhold devnet up`")
    layout = Layout(devnet_dir, state.base_port)
    node = layout.node(SWAP_NODE)
    lightning = LndBackend(node.rest_url, node.tls_cert_path, node.macaroon_path)
    chain = BtcdSwapChain.for_devnet(layout, state)
    layout.swap_server_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(
        lightning=lightning,
        chain=chain,
        state_dir=layout.swap_server_dir,
        config=SwapServerConfig(network=Network.REGTEST),
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=HOST, port=layout.swap_server_port, log_level="info")
    )
    try:
        await server.serve()
    finally:
        await chain.aclose()
        await lightning.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m taskhold.devnet.swap_server",
        description="The devnet's Boltz-API-v2 swap server (test infrastructure).",
    )
    parser.add_argument("--devnet-dir", type=Path, required=True, help="The devnet's data dir.")
    asyncio.run(serve(parser.parse_args().devnet_dir))


if __name__ == "__main__":
    main()
