"""The escrow lnd as a watch-only node with a separate signer node (``up --remote-signer``).

lnd's remote signing (lnd ``docs/remote-signing.md``) splits one wallet over two lnd processes:
the **signer** (``escrow-signer``) holds the seed and every private key and does nothing but
sign, over gRPC, for one client; the **watch-only** node (the devnet's ``escrow``) holds only the
account xpubs, runs the channels and the chain watching, and sends every signature it needs
(commitments, funding and sweeps, node announcements, ECDH for the p2p handshake) to the signer.
Whoever takes the escrow node's host gets channel state and public keys, no key that can spend.

Setting it up, in the order lnd requires:

1. the signer starts with its own wallet (``--noseedbackup``) and ``--bitcoin.node=nochainbackend``:
   it looks at no chain and opens no p2p port; it keeps REST and gRPC on loopback (the devnet's
   own setup reads its accounts over REST; the watch-only node signs over gRPC);
2. its account xpubs are exported (``GET /v2/wallet/accounts``, ``lncli wallet accounts list``)
   and a macaroon is baked for the watch-only node with only what lnd's docs name for it
   (``message:write signer:generate address:read onchain:write``);
3. the escrow lnd starts with ``remotesigner.*`` pointing at the signer and without a wallet;
   ``POST /v1/initwallet`` with ``watch_only`` creates its wallet from the xpubs. Later starts
   unlock it from a password file (``--wallet-unlock-password-file``), so a restart needs no
   call, only the signer running.

The escrow node's identity key is the signer's (both derive it from the same seed), so the
devnet's channels, peers and taskhold's configuration are the same with or without a signer.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import ssl
from pathlib import Path
from typing import Any

import httpx

from taskhold.devnet import processes
from taskhold.devnet.layout import HOST, SIGNER, Layout, NodePaths, write_private
from taskhold.devnet.lnd_node import LndAdmin, common_lnd_flags
from taskhold.lightning.base import LightningError
from taskhold.lightning.lnd_rest import b64

__all__ = [
    "REMOTE_SIGNED_NODE",
    "SIGNER_PERMISSIONS",
    "init_watch_only",
    "provision",
    "signer_argv",
    "start_signer",
    "watch_only_accounts",
    "watch_only_flags",
]

REMOTE_SIGNED_NODE = "escrow"
"""The node that runs watch-only under ``--remote-signer``: the escrow taskhold talks to (the
pool's extra escrow nodes keep their own keys)."""

SIGNER_PERMISSIONS = (
    ("message", "write"),
    ("signer", "generate"),
    ("address", "read"),
    ("onchain", "write"),
)
"""What the watch-only node may do on the signer, from lnd's ``docs/remote-signing.md``: sign
messages, transactions and PSBTs, derive keys; it cannot read the signer's macaroons or bake
new ones."""

SIGNER_TIMEOUT = "10s"
"""``remotesigner.timeout``: connecting and each signing request. lnd's default (5 s) is short
for a 2-core CI machine that runs the whole devnet at once."""

_ACCOUNT_PATH = re.compile(r"^m/(\d+)'/(\d+)'/(\d+)'$")


def signer_argv(bin_dir: Path, node: NodePaths) -> list[str]:
    """The signer's command line: its own wallet, no chain backend, no p2p listener; gRPC and
    REST on loopback only."""
    return [
        str(bin_dir / "lnd"),
        f"--lnddir={node.lnd_dir}",
        f"--alias={node.name}",
        "--bitcoin.regtest",
        "--bitcoin.node=nochainbackend",
        "--noseedbackup",
        "--nolisten",
        "--nobootstrap",
        f"--rpclisten={HOST}:{node.grpc_port}",
        f"--restlisten={HOST}:{node.rest_port}",
        *common_lnd_flags(),
    ]


def watch_only_flags(layout: Layout) -> list[str]:
    """The escrow lnd's flags under ``--remote-signer`` (instead of ``--noseedbackup``).

    A watch-only lnd shuts itself down when a signing request finds the signer unreachable or
    times out (``considerShutdown`` in lnd's ``lnwallet/rpcwallet``), and when its periodic
    health check cannot connect to it. The check is kept but made tolerant of a loaded 2-core
    machine (lnd's default is one 1 s attempt a minute): three 10 s attempts, so the escrow
    stops about half a minute after its signer is gone rather than on one slow handshake."""
    escrow, signer = layout.node(REMOTE_SIGNED_NODE), layout.signer
    return [
        f"--wallet-unlock-password-file={wallet_password_path(escrow)}",
        "--wallet-unlock-allow-create",
        "--remotesigner.enable",
        f"--remotesigner.rpchost={HOST}:{signer.grpc_port}",
        f"--remotesigner.tlscertpath={signer.tls_cert_path}",
        f"--remotesigner.macaroonpath={signer_macaroon_path(escrow)}",
        f"--remotesigner.timeout={SIGNER_TIMEOUT}",
        f"--healthcheck.remotesigner.timeout={SIGNER_TIMEOUT}",
        "--healthcheck.remotesigner.attempts=3",
        "--healthcheck.remotesigner.backoff=5s",
    ]


def wallet_password_path(escrow: NodePaths) -> Path:
    """The watch-only wallet's password, in its lnd dir: it guards public keys only."""
    return escrow.lnd_dir / "wallet-password"


def signer_macaroon_path(escrow: NodePaths) -> Path:
    """The macaroon the watch-only node presents to the signer (:data:`SIGNER_PERMISSIONS`)."""
    return escrow.lnd_dir / "signer.macaroon"


async def start_signer(layout: Layout, bin_dir: Path) -> None:
    """Start the signer on its data dir (a new wallet the first time) and wait until it
    answers; a no-op while it runs and answers."""
    signer = layout.signer
    admin = LndAdmin(signer)
    try:
        if processes.alive_pid(layout.pid_path(SIGNER)) is not None:
            try:
                await admin.getinfo()
                return
            except LightningError:
                await processes.stop(layout.pid_path(SIGNER))  # alive but not answering
        processes.spawn(
            signer_argv(bin_dir, signer),
            log_path=layout.log_path(SIGNER),
            pid_path=layout.pid_path(SIGNER),
        )
        await admin.wait_rpc()
    finally:
        await admin.aclose()


async def watch_only_accounts(signer: LndAdmin) -> list[dict[str, Any]]:
    """The signer's accounts as ``InitWallet``'s ``watch_only.accounts``: purpose, coin type and
    account from each ``m/purpose'/coin'/account'`` derivation path, and the xpub (what lnd's
    ``AccountsToWatchOnly`` does for ``lncli createwatchonly``)."""
    answer = await signer.rest.call("GET", "/v2/wallet/accounts")
    accounts = []
    for account in answer.get("accounts") or ():
        path = _ACCOUNT_PATH.match(str(account.get("derivation_path") or ""))
        if path is None or not account.get("extended_public_key"):
            continue  # the imported-keys account has no xpub of its own
        purpose, coin_type, number = (int(part) for part in path.groups())
        accounts.append(
            {
                "purpose": purpose,
                "coin_type": coin_type,
                "account": number,
                "xpub": str(account["extended_public_key"]),
            }
        )
    if not accounts:
        raise LightningError("the signer exported no accounts")
    return accounts


async def bake_signer_macaroon(signer: LndAdmin, escrow: NodePaths) -> None:
    """Bake the watch-only node's macaroon on the signer and write it into the escrow's dir."""
    body = {"permissions": [{"entity": e, "action": a} for e, a in SIGNER_PERMISSIONS]}
    answer = await signer.rest.call("POST", "/v1/macaroon", body=body)
    write_private(signer_macaroon_path(escrow), bytes.fromhex(str(answer["macaroon"])))


def prepare_watch_only(escrow: NodePaths) -> str:
    """Write the watch-only wallet's password file before the escrow lnd first starts; the
    password, for ``InitWallet``."""
    password = secrets.token_hex(16)
    write_private(wallet_password_path(escrow), password.encode())
    return password


async def init_watch_only(
    escrow: NodePaths, password: str, accounts: list[dict[str, Any]], within_seconds: float = 90.0
) -> None:
    """Create the escrow's watch-only wallet: ``POST /v1/initwallet`` (the WalletUnlocker, no
    macaroon yet) once the just-started lnd serves it."""
    body = {
        "wallet_password": b64(password.encode()),
        "watch_only": {"master_key_birthday_timestamp": "0", "accounts": accounts},
    }
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    last_error = "no answer"
    while loop.time() < deadline:
        if escrow.tls_cert_path.exists():
            try:
                tls = ssl.create_default_context(cadata=escrow.tls_cert_path.read_text())
                async with httpx.AsyncClient(verify=tls, timeout=60.0) as http:
                    response = await http.post(f"{escrow.rest_url}/v1/initwallet", json=body)
                if response.status_code == 200:
                    return
                last_error = response.text[:300]
            except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
                last_error = str(exc)  # not listening yet, or a half-written certificate
        await asyncio.sleep(0.3)
    raise LightningError(
        f"lnd {escrow.name} did not create its watch-only wallet within "
        f"{within_seconds:.0f} s: {last_error}"
    )


async def provision(layout: Layout, bin_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """Start the signer, bake the watch-only node's macaroon and export the accounts; the
    escrow's new wallet password and the accounts, for :func:`init_watch_only` once the escrow
    lnd runs."""
    await start_signer(layout, bin_dir)
    escrow = layout.node(REMOTE_SIGNED_NODE)
    signer = LndAdmin(layout.signer)
    try:
        await bake_signer_macaroon(signer, escrow)
        accounts = await watch_only_accounts(signer)
    finally:
        await signer.aclose()
    return prepare_watch_only(escrow), accounts
