"""The Boltz-API-v2 app under /v2 (+ /v2/ws), and the devnet-only admin endpoint.

Shapes follow Boltz's public API v2 (pairs, swap creation, status, claim and refund signing,
broadcast, WebSocket updates), so taskhold's client speaks to this server exactly as it would
to a real Boltz endpoint. Errors are Boltz's convention: HTTP 400 (bad input, a refused
signature) or 404 (unknown swap) with ``{"error": "..."}``; no client mistake is ever a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from coincurve import PublicKey
from fastapi import APIRouter, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskhold.errors import Refusal
from taskhold.lightning.base import AlreadyExists, LightningBackend, LightningError
from taskhold.payments.invoices import decode_invoice
from taskhold.swaps.tree import SwapType

from .chain import ChainRefused, SwapChain
from .config import SwapServerConfig
from .lifecycle import Status
from .records import RecordStore, SwapRecord, new_secret_key, new_swap_id
from .signing import (
    SigningRefused,
    check_preimage,
    claim_offer,
    cooperative_refund,
    cooperative_reverse_claim,
    finish_claim,
    parse_spend,
)
from .watcher import Watcher

__all__ = ["ApiError", "SwapServerConfig", "build_app", "pair_info", "status_of"]

CURRENCY = "BTC"
MIN_INVOICE_VALIDITY_SECONDS = 20 * 60
"""Boltz refuses an invoice that stays valid for less than two block times."""
REVERSE_CLTV_MARGIN_BLOCKS = 36
"""The reverse hold invoice's HTLC outlives the on-chain timeout by this much, so a client
claiming on chain at the last block still leaves the server time to settle."""
DEFAULT_REVERSE_INVOICE_EXPIRY = 3600


class ApiError(Exception):
    """A refused request: ``status`` 400 or 404, ``message`` for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


# -- pairs and fees ------------------------------------------------------------------------


def _pct(value: Decimal) -> float:
    return float(value)


def _pair_hash(pair: dict[str, Any]) -> str:
    canonical = json.dumps(pair, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def pair_info(config: SwapServerConfig, kind: SwapType) -> dict[str, Any]:
    """The BTC/BTC pair of ``kind`` with its hash (sha256 of the canonical pair without it)."""
    if kind is SwapType.SUBMARINE:
        pair: dict[str, Any] = {
            "rate": 1,
            "limits": {
                "minimal": config.minimal_sat,
                "maximal": config.maximal_sat,
                "maximalZeroConf": 0,
            },
            "fees": {
                "percentage": _pct(config.submarine_fee_percent),
                "minerFees": config.submarine_miner_fee_sat,
            },
        }
    else:
        pair = {
            "rate": 1,
            "limits": {"minimal": config.minimal_sat, "maximal": config.maximal_sat},
            "fees": {
                "percentage": _pct(config.reverse_fee_percent),
                "minerFees": {
                    "lockup": config.reverse_lockup_fee_sat,
                    "claim": config.reverse_claim_fee_sat,
                },
            },
        }
    return {"hash": _pair_hash(pair), **pair}


def submarine_expected_amount(config: SwapServerConfig, invoice_sat: int) -> int:
    """invoice + miner fee + ceil(invoice x percentage)."""
    fee = math.ceil(Decimal(invoice_sat) * config.submarine_fee_percent / 100)
    return invoice_sat + config.submarine_miner_fee_sat + fee


def reverse_onchain_amount(config: SwapServerConfig, invoice_sat: int) -> int:
    """floor(invoice - ceil(invoice x percentage) - lockup fee)."""
    fee = math.ceil(Decimal(invoice_sat) * config.reverse_fee_percent / 100)
    return invoice_sat - fee - config.reverse_lockup_fee_sat


def reverse_invoice_amount(config: SwapServerConfig, onchain_sat: int) -> int:
    """ceil((onchain + lockup fee) / (1 - percentage))."""
    share = 1 - config.reverse_fee_percent / 100
    return math.ceil(Decimal(onchain_sat + config.reverse_lockup_fee_sat) / share)


# -- wire views ------------------------------------------------------------------------------


def _tree_json(record: SwapRecord) -> dict[str, Any]:
    tree = record.tree()
    return {
        "claimLeaf": {"version": 0xC0, "output": tree.claim_leaf.hex()},
        "refundLeaf": {"version": 0xC0, "output": tree.refund_leaf.hex()},
    }


def status_of(record: SwapRecord) -> dict[str, Any]:
    """What ``GET /swap/{id}`` and the WebSocket updates say about a swap."""
    out: dict[str, Any] = {"status": record.status.value}
    locked = (Status.TX_MEMPOOL, Status.TX_CONFIRMED, Status.TX_LOCKUP_FAILED)
    if record.status in locked and record.lockup_txid is not None:
        out["transaction"] = {
            "id": record.lockup_txid,
            "hex": record.lockup_tx_hex,
            "confirmed": record.lockup_confirmed,
        }
        if record.kind is SwapType.SUBMARINE and record.status is Status.TX_MEMPOOL:
            out["zeroConfRejected"] = True
    if record.status is Status.TX_CLAIMED and record.claim_txid:
        out["transaction"] = {"id": record.claim_txid}
    if record.status is Status.TX_REFUNDED and record.refund_txid:
        out["transaction"] = {"id": record.refund_txid}
    if record.failure_reason and record.status in (
        Status.TX_LOCKUP_FAILED,
        Status.INVOICE_FAILED_TO_PAY,
        Status.TX_FAILED,
    ):
        out["failureReason"] = record.failure_reason
    if record.failure_details:
        out["failureDetails"] = record.failure_details
    return out


# -- request parsing -------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    return body


def _str(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _bad(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    return value


def _req_str(body: dict[str, Any], name: str) -> str:
    value = _str(body, name)
    assert value is not None
    return value


def _hex(body: dict[str, Any], name: str, size: int) -> bytes:
    value = _req_str(body, name)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise _bad(f"{name} must be hex") from None
    if len(raw) != size:
        raise _bad(f"{name} must be {size} bytes")
    return raw


def _pubkey(body: dict[str, Any], name: str) -> bytes:
    raw = _hex(body, name, 33)
    try:
        PublicKey(raw)
    except ValueError:
        raise _bad(f"{name} is not a valid public key") from None
    return raw


def _int(body: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _bad(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{name} must be an integer")
    return value


def _pair(body: dict[str, Any], config: SwapServerConfig, kind: SwapType) -> None:
    for name in ("from", "to"):  # required by Boltz's schema, so required here too
        value = body.get(name)
        if value is None:
            raise _bad(f"{name} is required")
        if value != CURRENCY:
            raise _bad(f"could not find pair with id: {body.get('from')}/{body.get('to')}")
    given = body.get("pairHash")
    if given is not None and given != pair_info(config, kind)["hash"]:
        raise _bad("invalid pair hash")


def _limits(config: SwapServerConfig, amount: int) -> None:
    if amount < config.minimal_sat:
        raise _bad(f"{amount} is less than minimal of {config.minimal_sat}")
    if amount > config.maximal_sat:
        raise _bad(f"{amount} is more than maximal of {config.maximal_sat}")


class _Hub:
    """WebSocket subscribers per swap id; every status change is queued to each of them."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}

    def publish(self, record: SwapRecord) -> None:
        update = {"id": record.id, **status_of(record)}
        for queue in self.subscribers.get(record.id, set()):
            queue.put_nowait(update)


# -- the app ---------------------------------------------------------------------------------


def build_app(
    *, lightning: LightningBackend, chain: SwapChain, state_dir: Path, config: SwapServerConfig
) -> FastAPI:
    """The Boltz-API-v2 app under /v2 (+ /v2/ws); its lifespan runs the watcher that moves
    swaps along (lockup seen -> pay invoice; hold accepted -> lock up; claims; timeouts).
    Swap records (with the server's per-swap secret keys) are kept under state_dir, written
    before any funds move, so a restarted server carries on."""
    records = RecordStore(state_dir)
    watcher = Watcher(lightning=lightning, chain=chain, records=records, config=config)
    hub = _Hub()
    records.listeners.append(hub.publish)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(watcher.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await watcher.close()

    app = FastAPI(title="taskhold devnet swap server (Boltz API v2)", lifespan=lifespan)
    app.state.records = records
    app.state.watcher = watcher
    app.state.hub = hub

    def cooperative() -> bool:
        return watcher.cooperative

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(SigningRefused)
    async def _refused(_request: Request, exc: SigningRefused) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid request"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    def swap(swap_id: str, kind: SwapType | None = None) -> SwapRecord:
        record = records.get(swap_id)
        if record is None or (kind is not None and record.kind is not kind):
            raise ApiError(404, f"could not find swap with id: {swap_id}")
        return record

    v2 = APIRouter(prefix="/v2")

    # -- pairs and chain --------------------------------------------------------------------

    @v2.get("/swap/submarine")
    async def submarine_pairs() -> dict[str, Any]:
        return {CURRENCY: {CURRENCY: pair_info(config, SwapType.SUBMARINE)}}

    @v2.get("/swap/reverse")
    async def reverse_pairs() -> dict[str, Any]:
        return {CURRENCY: {CURRENCY: pair_info(config, SwapType.REVERSE)}}

    @v2.get("/nodes")
    async def nodes() -> dict[str, Any]:
        try:
            pubkey = await lightning.node_pubkey()
        except LightningError:
            raise ApiError(503, "the Lightning node cannot be reached now") from None
        return {CURRENCY: {"LND": {"publicKey": pubkey, "uris": []}}}

    @v2.get("/chain/heights")
    async def heights() -> dict[str, Any]:
        return {CURRENCY: await chain.height()}

    @v2.get("/chain/{currency}/height")
    async def height(currency: str) -> dict[str, Any]:
        if currency != CURRENCY:
            raise _bad(f"currency {currency} is not supported")
        return {"height": await chain.height()}

    @v2.post("/chain/{currency}/transaction")
    async def broadcast(currency: str, request: Request) -> dict[str, Any]:
        if currency != CURRENCY:
            raise _bad(f"currency {currency} is not supported")
        tx_hex = _req_str(await _body(request), "hex")
        try:
            bytes.fromhex(tx_hex)
        except ValueError:
            raise _bad("hex must be a hex-encoded transaction") from None
        try:
            return {"id": await chain.broadcast(tx_hex)}
        except ChainRefused as exc:
            raise _bad(str(exc)) from None

    # -- submarine --------------------------------------------------------------------------

    @v2.post("/swap/submarine", status_code=201)
    async def create_submarine(request: Request) -> dict[str, Any]:
        body = await _body(request)
        _pair(body, config, SwapType.SUBMARINE)
        invoice_text = _req_str(body, "invoice")
        refund_key = _pubkey(body, "refundPublicKey")
        try:
            invoice = decode_invoice(invoice_text, field="invoice")
        except Refusal as exc:
            raise _bad(str(exc)) from None
        if invoice.network != config.network.value:
            raise _bad(f"invoice is for network {invoice.network!r}, not {config.network.value!r}")
        if invoice.amount_msat is None or invoice.amount_msat <= 0:
            raise _bad("0 amount invoices are not allowed")
        if invoice.amount_msat % 1000:
            raise _bad("the invoice amount must be whole satoshis")
        now = int(time.time())
        if invoice.expires_at <= now:
            raise _bad("the provided invoice expired already")
        if invoice.expires_at - now < MIN_INVOICE_VALIDITY_SECONDS:
            raise _bad("invoice expiry too short")
        if invoice.min_final_cltv_expiry >= config.submarine_timeout_blocks - 20:
            raise _bad("the invoice's final CLTV delta does not fit the swap timeout")
        invoice_sat = invoice.amount_msat // 1000
        _limits(config, invoice_sat)
        tip = await chain.height()  # before the duplicate check: nothing awaits after it
        if records.by_preimage_hash(SwapType.SUBMARINE, invoice.payment_hash_hex) is not None:
            raise _bad("a swap with this invoice exists already")
        record = SwapRecord(
            id=new_swap_id(),
            kind=SwapType.SUBMARINE,
            status=Status.INVOICE_SET,
            server_seckey_hex=new_secret_key().hex(),
            client_pubkey_hex=refund_key.hex(),
            preimage_hash_hex=invoice.payment_hash_hex,
            timeout_block_height=tip + config.submarine_timeout_blocks,
            created_height=tip,
            invoice=invoice.payment_request,
            invoice_amount_sat=invoice_sat,
            onchain_amount_sat=submarine_expected_amount(config, invoice_sat),
            address="",
        )
        record.address = record.tree().address(config.network)
        records.add(record)
        amount_btc = Decimal(record.onchain_amount_sat) / Decimal(100_000_000)
        return {
            "id": record.id,
            "address": record.address,
            "bip21": f"bitcoin:{record.address}?amount={amount_btc:f}"
            f"&label=Send%20to%20BTC%20lightning",
            "expectedAmount": record.onchain_amount_sat,
            "acceptZeroConf": False,
            "claimPublicKey": record.server_pubkey.hex(),
            "timeoutBlockHeight": record.timeout_block_height,
            "swapTree": _tree_json(record),
        }

    @v2.get("/swap/submarine/{swap_id}/transaction")
    async def submarine_transaction(swap_id: str) -> dict[str, Any]:
        record = swap(swap_id, SwapType.SUBMARINE)
        if record.lockup_txid is None:
            raise _bad("no lockup transaction found")
        return {
            "id": record.lockup_txid,
            "hex": record.lockup_tx_hex,
            "timeoutBlockHeight": record.timeout_block_height,
        }

    @v2.get("/swap/submarine/{swap_id}/preimage")
    async def submarine_preimage(swap_id: str) -> dict[str, Any]:
        record = swap(swap_id, SwapType.SUBMARINE)
        if record.preimage_hex is None:
            raise _bad("swap has not succeeded")
        return {"preimage": record.preimage_hex}

    @v2.get("/swap/submarine/{swap_id}/claim")
    async def submarine_claim_details(swap_id: str) -> dict[str, Any]:
        record = swap(swap_id, SwapType.SUBMARINE)
        async with watcher.lock(swap_id):
            if record.status is not Status.TX_CLAIM_PENDING:
                raise _bad(f"swap not eligible for a cooperative claim (status {record.status})")
            if not cooperative():
                raise _bad("cooperative signatures are disabled")
            offer = claim_offer(record)
            watcher.claim_offers[swap_id] = offer
            return {
                "preimage": record.preimage_hex,
                "pubNonce": offer.nonce.public.hex(),
                "publicKey": record.server_pubkey.hex(),
                "transactionHash": offer.sighash.hex(),
            }

    @v2.post("/swap/submarine/{swap_id}/claim")
    async def submarine_claim(swap_id: str, request: Request) -> dict[str, Any]:
        record = swap(swap_id, SwapType.SUBMARINE)
        body = await _body(request)
        pub_nonce = _req_str(body, "pubNonce")
        partial = _req_str(body, "partialSignature")
        async with watcher.lock(swap_id):
            offer = watcher.claim_offers.get(swap_id)
            if record.status is not Status.TX_CLAIM_PENDING or offer is None:
                raise _bad("no cooperative claim of this swap is open")
            signed = finish_claim(record, offer, pub_nonce_hex=pub_nonce, partial_hex=partial)
            watcher.claim_offers.pop(swap_id, None)
            try:
                txid = await chain.broadcast(signed)
            except ChainRefused as exc:
                raise _bad(f"the claim was refused by the chain: {exc}") from None
            records.move(record, Status.TX_CLAIMED, claim_txid=txid)
            return {}

    @v2.post("/swap/submarine/{swap_id}/refund")
    async def submarine_refund(swap_id: str, request: Request) -> dict[str, Any]:
        record = swap(swap_id, SwapType.SUBMARINE)
        body = await _body(request)
        pub_nonce = _req_str(body, "pubNonce")
        tx_hex = _req_str(body, "transaction")
        index = _int(body, "index")
        assert index is not None
        if not cooperative():
            raise _bad("cooperative signatures are disabled")
        async with watcher.lock(swap_id):
            try:
                payment = (await lightning.lookup_payment(record.preimage_hash)).status
            except LightningError:
                raise ApiError(503, "cannot check the invoice payment now; retry") from None
            nonce, partial = cooperative_refund(
                record, payment=payment, tx_hex=tx_hex, index=index, pub_nonce_hex=pub_nonce
            )
            return {"pubNonce": nonce.hex(), "partialSignature": partial.hex()}

    # -- reverse ----------------------------------------------------------------------------

    @v2.post("/swap/reverse", status_code=201)
    async def create_reverse(request: Request) -> dict[str, Any]:
        body = await _body(request)
        _pair(body, config, SwapType.REVERSE)
        preimage_hash = _hex(body, "preimageHash", 32)
        claim_key = _pubkey(body, "claimPublicKey")
        invoice_amount = _int(body, "invoiceAmount", required=False)
        onchain_amount = _int(body, "onchainAmount", required=False)
        if (invoice_amount is None) == (onchain_amount is None):
            raise _bad("exactly one of invoiceAmount and onchainAmount is required")
        if invoice_amount is not None:
            onchain_amount = reverse_onchain_amount(config, invoice_amount)
        else:
            assert onchain_amount is not None
            if onchain_amount <= 0:
                raise _bad("onchainAmount must be positive")
            invoice_amount = reverse_invoice_amount(config, onchain_amount)
        _limits(config, invoice_amount)
        expiry = _int(body, "invoiceExpiry", required=False) or DEFAULT_REVERSE_INVOICE_EXPIRY
        if not 60 <= expiry <= 7 * 24 * 3600:
            raise _bad("invoiceExpiry must be between 60 seconds and a week")
        description = _str(body, "description", required=False) or "Send to BTC address"
        tip = await chain.height()  # before the duplicate check: nothing awaits after it
        if records.by_preimage_hash(SwapType.REVERSE, preimage_hash.hex()) is not None:
            raise _bad("a swap with this preimage hash exists already")
        record = SwapRecord(
            id=new_swap_id(),
            kind=SwapType.REVERSE,
            status=Status.SWAP_CREATED,
            server_seckey_hex=new_secret_key().hex(),
            client_pubkey_hex=claim_key.hex(),
            preimage_hash_hex=preimage_hash.hex(),
            timeout_block_height=tip + config.reverse_timeout_blocks,
            created_height=tip,
            invoice="",
            invoice_amount_sat=invoice_amount,
            onchain_amount_sat=onchain_amount,
            address="",
        )
        record.address = record.tree().address(config.network)
        # kept before the invoice exists, so no invoice is ever unknown; locked, so the watcher
        # does not take the invoice-less record for one whose creation died
        async with watcher.lock(record.id):
            records.add(record)
            try:
                hold = await lightning.create_hold_invoice(
                    preimage_hash,
                    invoice_amount * 1000,
                    memo=description,
                    expiry_seconds=expiry,
                    cltv_expiry_delta=config.reverse_timeout_blocks + REVERSE_CLTV_MARGIN_BLOCKS,
                )
            except AlreadyExists:
                records.remove(record)
                raise _bad("an invoice with this preimage hash exists already") from None
            except LightningError as exc:
                records.remove(record)
                raise ApiError(503, f"could not create the invoice: {exc}") from None
            records.update(record, invoice=hold.payment_request)
        return {
            "id": record.id,
            "invoice": record.invoice,
            "lockupAddress": record.address,
            "refundPublicKey": record.server_pubkey.hex(),
            "timeoutBlockHeight": record.timeout_block_height,
            "onchainAmount": record.onchain_amount_sat,
            "swapTree": _tree_json(record),
        }

    @v2.get("/swap/reverse/{swap_id}/transaction")
    async def reverse_transaction(swap_id: str) -> dict[str, Any]:
        record = swap(swap_id, SwapType.REVERSE)
        if record.lockup_txid is None or record.lockup_tx_hex is None:
            raise _bad("no lockup transaction found")
        return {
            "id": record.lockup_txid,
            "hex": record.lockup_tx_hex,
            "timeoutBlockHeight": record.timeout_block_height,
        }

    @v2.post("/swap/reverse/{swap_id}/claim")
    async def reverse_claim(swap_id: str, request: Request) -> dict[str, Any]:
        record = swap(swap_id, SwapType.REVERSE)
        body = await _body(request)
        preimage_hex = _req_str(body, "preimage")
        pub_nonce = _str(body, "pubNonce", required=False)
        tx_hex = _str(body, "transaction", required=False)
        index = _int(body, "index", required=False)
        wants_signature = pub_nonce is not None or tx_hex is not None
        if wants_signature and (pub_nonce is None or tx_hex is None):
            raise _bad("pubNonce and transaction come together")
        async with watcher.lock(swap_id):
            preimage = check_preimage(record, preimage_hex)
            if wants_signature:
                if not cooperative():
                    raise _bad("cooperative signatures are disabled")
                assert tx_hex is not None
                parse_spend(record, tx_hex, index or 0)  # refuse a bad spend before settling
            if record.status not in (Status.TX_MEMPOOL, Status.TX_CONFIRMED):
                if record.status is not Status.INVOICE_SETTLED:
                    raise _bad(
                        f"swap not eligible for a cooperative claim (status {record.status})"
                    )
            else:
                try:
                    await lightning.settle_invoice(preimage)
                except LightningError as exc:
                    raise _bad(f"could not settle the invoice: {exc}") from None
                records.move(record, Status.INVOICE_SETTLED, preimage_hex=preimage.hex())
            if not wants_signature:
                return {}
            assert pub_nonce is not None and tx_hex is not None
            nonce, partial = cooperative_reverse_claim(
                record, tx_hex=tx_hex, index=index or 0, pub_nonce_hex=pub_nonce
            )
            return {"pubNonce": nonce.hex(), "partialSignature": partial.hex()}

    # -- status -----------------------------------------------------------------------------

    @v2.get("/swap/{swap_id}")
    async def swap_status(swap_id: str) -> dict[str, Any]:
        return status_of(swap(swap_id))

    @v2.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        subscribed: set[str] = set()

        async def pump() -> None:
            while True:
                update = await queue.get()
                await socket.send_json(
                    {"event": "update", "channel": "swap.update", "args": [update]}
                )

        sender = asyncio.create_task(pump())
        try:
            while True:
                frame = await socket.receive()
                if frame["type"] == "websocket.disconnect":
                    break
                text = frame.get("text")
                if text is None:
                    text = (frame.get("bytes") or b"").decode("utf-8", "replace")
                try:
                    message = json.loads(text)
                except json.JSONDecodeError:
                    await socket.send_json({"event": "error", "error": "invalid JSON"})
                    continue
                if not isinstance(message, dict):
                    await socket.send_json({"event": "error", "error": "invalid message"})
                    continue
                op = message.get("op")
                args = message.get("args") or []
                if op == "ping":
                    await socket.send_json({"event": "pong"})
                elif op in ("subscribe", "unsubscribe") and (
                    message.get("channel") != "swap.update"
                    or not isinstance(args, list)
                    or not all(isinstance(a, str) for a in args)
                ):
                    await socket.send_json({"event": "error", "error": "invalid subscription"})
                elif op == "subscribe":
                    for swap_id in args:
                        subscribed.add(swap_id)
                        hub.subscribers.setdefault(swap_id, set()).add(queue)
                    await socket.send_json(
                        {"event": "subscribe", "channel": "swap.update", "args": args}
                    )
                    current = [{"id": r.id, **status_of(r)} for a in args if (r := records.get(a))]
                    if current:
                        await socket.send_json(
                            {"event": "update", "channel": "swap.update", "args": current}
                        )
                elif op == "unsubscribe":
                    for swap_id in args:
                        subscribed.discard(swap_id)
                        hub.subscribers.get(swap_id, set()).discard(queue)
                    await socket.send_json(
                        {"event": "unsubscribe", "channel": "swap.update", "args": args}
                    )
                else:
                    await socket.send_json({"event": "error", "error": f"unknown op {op!r}"})
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            for swap_id in subscribed:
                hub.subscribers.get(swap_id, set()).discard(queue)

    app.include_router(v2)

    # -- devnet-only admin ------------------------------------------------------------------

    async def set_cooperative(request: Request) -> dict[str, Any]:
        enabled = (await _body(request)).get("enabled")
        if not isinstance(enabled, bool):
            raise _bad("enabled must be true or false")
        watcher.cooperative = enabled
        return {"enabled": enabled}

    for path in ("/devnet/cooperative", "/v2/devnet/cooperative"):
        app.add_api_route(path, set_cooperative, methods=["POST"])
    return app
