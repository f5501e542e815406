"""A bitcoind-RPC-compatible front for btcd, so LDK Node's bitcoind chain source can use the devnet.

LDK Node cannot talk to btcd directly, for four reasons: btcd speaks only TLS (lnd needs it on),
LDK only plain HTTP; btcd drops the reply to a request without ``"jsonrpc"``, and LDK never sends
one; btcd replies without ``Content-Length`` and closes, while LDK reads a body only by its length;
and btcd lacks or differs on methods LDK needs (``getmempoolentry``, ``estimatesmartfee``,
``chainwork`` in ``getblockheader``, ``mempoolminfee``).

The shim listens on plain HTTP/1.1 with keep-alive and Basic auth, always answers with
``Content-Length``, and calls btcd over one fresh TLS connection per call (btcd closes after each
reply), with ``"jsonrpc": "1.0"`` added and at most :data:`MAX_UPSTREAM_CALLS` calls in flight
(btcd refuses clients above ``--rpcmaxclients``).

A node that was stopped while blocks were mined asks for every missed block's header and body,
several times over, before it moves at all: it walks back from the tip one header a call, each
a new TLS connection to btcd. LDK Node also backs off exponentially (up to five minutes) after any
failed call in that catch-up. So the shim fetches the headers below an unknown block's parent in
one ``getheaders`` call and answers the walk from them; each connection resumes the last TLS
session (a full handshake with btcd's P-521 certificate costs 5 ms, a resumed one 2); raw blocks
are kept by hash; and a read that fails to reach btcd is tried again at once. A hash fixes its
header's and block's bytes and its height, so nothing kept goes stale; only the ``confirmations``
of a kept header are counted from the highest block the shim has seen, and ``nextblockhash`` is
left out (LDK reads neither). Method by method it rewrites what LDK reads and
passes everything else through; see ``docs/ldk.md``. Regtest only: the fee answers are constants.

Run as a process::

    TASKHOLD_SHIM_BTCD_PASS=... TASKHOLD_SHIM_PASS=... python -m taskhold.devnet.bitcoind_shim \\
        --btcd-rpc 127.0.0.1:25100 --btcd-cert DIR/btcd/rpc.cert --btcd-user taskhold \\
        --listen 127.0.0.1:25106 --user ldk
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import itertools
import json
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from taskhold.devnet.layout import HOST

__all__ = [
    "FEE_RATE",
    "MAX_BODY_BYTES",
    "MAX_UPSTREAM_CALLS",
    "MIN_FEE",
    "REGTEST_BITS",
    "BitcoindShim",
    "RpcFailure",
    "block_hash",
    "header_work",
    "main",
]

log = logging.getLogger(__name__)

MAX_UPSTREAM_CALLS = 4
"""Calls to btcd in flight at once: well under btcd's default ``--rpcmaxclients`` of 10."""
MAX_BODY_BYTES = 1_000_000
"""A larger request body is refused unread."""
MIN_FEE = 0.00001
"""btcd's minimum relay fee, BTC/kvB (1 sat/vB)."""
FEE_RATE = 0.00002
"""Every ``estimatesmartfee`` answer, BTC/kvB: constant, so LDK never sends ``update_fee``."""
REGTEST_BITS = 0x207FFFFF
"""Every regtest block's ``bits`` (no retargeting): work 2 per block."""
NETWORK_VERSION = 270000
"""Claimed in ``getnetworkinfo``; below 290000 so no LDK enables channels btcd cannot relay."""
MEMPOOL_CACHE_SECONDS = 1.0
RAW_BLOCK_CACHE_CHARS = 64_000_000
"""Raw blocks kept for repeated ``getblock <hash> 0`` calls, in hex characters (32 MB of blocks)."""
HEADER_PREFETCH = 2000
"""Headers asked of btcd at once (``getheaders``' limit) below a block whose parent is unknown."""
MAX_KEPT_HEADERS = 200_000
UPSTREAM_RETRY_DELAYS = (0.1, 0.5, 1.5)
"""Pauses before each further try of a read that could not reach btcd (or found it busy)."""

# JSON-RPC error codes, as bitcoind uses them.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
MISC_ERROR = -1
NOT_FOUND = -5
IN_WARMUP = -28

_ZERO_HASH = "0" * 64
_WALK_LIMIT = 10_000


class RpcFailure(Exception):
    """A JSON-RPC error: from btcd, or the shim's own."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# -- block headers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RawHeader:
    version: int
    prev: str
    merkleroot: str
    time: int
    bits: int
    nonce: int


def _parse_header(raw: bytes) -> _RawHeader:
    if len(raw) != 80:
        raise RpcFailure(MISC_ERROR, f"btcd sent a {len(raw)}-byte block header")
    (version,) = struct.unpack_from("<i", raw, 0)
    header_time, bits, nonce = struct.unpack_from("<III", raw, 68)
    return _RawHeader(
        version=version,
        prev=raw[4:36][::-1].hex(),
        merkleroot=raw[36:68][::-1].hex(),
        time=header_time,
        bits=bits,
        nonce=nonce,
    )


def block_hash(raw_header: bytes) -> str:
    """A block's hash in display order: double SHA-256 of the 80-byte header, reversed."""
    return hashlib.sha256(hashlib.sha256(raw_header).digest()).digest()[::-1].hex()


def _target(bits: int) -> int:
    exponent, mantissa = bits >> 24, bits & 0x007FFFFF
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return mantissa << (8 * (exponent - 3))


def header_work(bits: int) -> int:
    """The work one header with ``bits`` adds to the chain: 2**256 // (target + 1)."""
    return (1 << 256) // (_target(bits) + 1)


def _difficulty(bits: int) -> float:
    target = _target(bits)
    return _target(0x1D00FFFF) / target if target else 0.0


# -- the shim --------------------------------------------------------------------------------


class BitcoindShim:
    """The shim: a threaded HTTP server in front of one btcd.

    ``start()`` binds and serves in a daemon thread and returns the port (``listen_port=0`` picks
    a free one); ``stop()`` stops serving. Also a context manager.
    """

    def __init__(
        self,
        *,
        btcd_host: str,
        btcd_port: int,
        btcd_cafile: str | Path,
        btcd_user: str,
        btcd_password: str,
        user: str,
        password: str,
        listen_host: str = HOST,
        listen_port: int = 0,
        upstream_timeout: float = 30.0,
    ) -> None:
        self._btcd_host = btcd_host
        self._btcd_port = btcd_port
        self._btcd_cafile = Path(btcd_cafile)
        self._btcd_auth = "Basic " + base64.b64encode(
            f"{btcd_user}:{btcd_password}".encode()
        ).decode("ascii")
        self._expected_auth = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        ).encode()
        self._listen = (listen_host, listen_port)
        self._timeout = upstream_timeout
        self._slots = threading.BoundedSemaphore(MAX_UPSTREAM_CALLS)
        self._ids = itertools.count(1)
        self._tls: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()
        self._tls_session: ssl.SSLSession | None = None
        self._headers: dict[str, tuple[_RawHeader, int]] = {}
        self._headers_lock = threading.Lock()
        self._tip_height = 0
        self._raw_blocks: OrderedDict[str, str] = OrderedDict()
        self._raw_block_chars = 0
        self._raw_blocks_lock = threading.Lock()
        self._positions: dict[str, tuple[int, int]] = {}
        self._mempool: tuple[float, dict[str, Any]] | None = None
        self._mempool_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> int:
        """Bind, serve in a daemon thread, and return the bound port."""
        if self._server is not None:
            return self.port
        server = ThreadingHTTPServer(self._listen, _Handler)
        server.daemon_threads = True
        server.shim = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="bitcoind-shim", daemon=True
        )
        self._thread.start()
        return self.port

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the shim is not started")
        return int(self._server.server_address[1])

    def __enter__(self) -> BitcoindShim:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def authorized(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self._expected_auth)

    # -- upstream ----------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        with self._tls_lock:
            if self._tls is None:
                if not self._btcd_cafile.exists():
                    raise RpcFailure(
                        IN_WARMUP, f"btcd has not written its RPC certificate {self._btcd_cafile}"
                    )
                self._tls = ssl.create_default_context(cafile=str(self._btcd_cafile))
            return self._tls

    def upstream(self, method: str, params: list[Any]) -> Any:
        """One call to btcd on a fresh TLS connection; its result, or :class:`RpcFailure`.

        A call that did not reach btcd, or found it busy, is tried again after a short pause,
        unless it sends a transaction: the first try may have reached btcd after all.
        """
        delays = () if method == "sendrawtransaction" else UPSTREAM_RETRY_DELAYS
        for delay in delays:
            try:
                return self._exchange(method, params)
            except RpcFailure as failure:
                if failure.code != IN_WARMUP:
                    log.warning("btcd %s failed: %s", method, failure)
                    raise
                log.info("btcd %s failed, trying again in %.1f s: %s", method, delay, failure)
                time.sleep(delay)
        try:
            return self._exchange(method, params)
        except RpcFailure as failure:
            log.warning("btcd %s failed: %s", method, failure)
            raise

    def _exchange(self, method: str, params: list[Any]) -> Any:
        body = json.dumps(
            {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": params}
        ).encode()
        headers = {"Authorization": self._btcd_auth, "Content-Type": "application/json"}
        context = self._tls_context()
        with self._slots:
            connection = _ResumingConnection(
                self._btcd_host,
                self._btcd_port,
                context=context,
                timeout=self._timeout,
                session=self._tls_session,
            )
            try:
                connection.request("POST", "/", body, headers)
                response = connection.getresponse()
                if connection.session is not None:  # read before the body closes the socket
                    self._tls_session = connection.session
                status, raw = response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise RpcFailure(
                    IN_WARMUP,
                    f"btcd unreachable at {self._btcd_host}:{self._btcd_port}: "
                    f"{type(exc).__name__}: {exc}",
                ) from None
            finally:
                connection.close()
        if status == 401:
            raise RpcFailure(MISC_ERROR, "btcd refused the shim's RPC login")
        if status == 503:
            raise RpcFailure(IN_WARMUP, "btcd is busy (too many RPC clients)")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise RpcFailure(MISC_ERROR, f"btcd sent no JSON reply (HTTP {status})") from None
        if not isinstance(answer, dict):
            raise RpcFailure(MISC_ERROR, f"btcd sent a reply that is not an object (HTTP {status})")
        error = answer.get("error")
        if error:
            if isinstance(error, dict):
                code = error.get("code")
                raise RpcFailure(
                    code if isinstance(code, int) else MISC_ERROR, str(error.get("message"))
                )
            raise RpcFailure(MISC_ERROR, str(error))
        return answer.get("result")

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self, method: str, params: list[Any]) -> Any:
        """Answer one bitcoind-style call: rewritten, synthesized or passed through."""
        handler = _METHODS.get(method)
        if handler is None:
            return self.upstream(method, params)
        return handler(self, params)

    def _getblockchaininfo(self, params: list[Any]) -> Any:
        info = self.upstream("getblockchaininfo", params)
        if isinstance(info, dict):
            if isinstance(info.get("blocks"), int):
                self._saw_height(info["blocks"])
            info.setdefault("initialblockdownload", False)
            info.setdefault("warnings", "")
            if info.get("chain") == "regtest" and isinstance(info.get("blocks"), int):
                info.setdefault("chainwork", f"{2 * (info['blocks'] + 1):064x}")
        return info

    def _getblockheader(self, params: list[Any]) -> Any:
        if not params or not isinstance(params[0], str):
            raise RpcFailure(INVALID_PARAMS, "getblockheader needs a block hash")
        verbose = params[1] if len(params) > 1 else True
        if verbose is False or verbose == 0:
            return self.upstream("getblockheader", [params[0], False])
        return self.header(params[0])

    def header(self, hash_: str) -> dict[str, Any]:
        """``getblockheader`` as bitcoind shapes it: 8-hex ``bits``, 64-hex ``chainwork``.

        btcd's verbose form fails (-32603) for a block off the main chain, e.g. a tip LDK holds
        from before a reorg: then the raw header is parsed, and height and chainwork are found by
        walking back to the main chain. A header btcd gave before is answered from memory, and
        one whose parent is new brings the headers below it (:meth:`_fetch_headers_below`).
        """
        with self._headers_lock:
            kept = self._headers.get(hash_)
        if kept is not None:
            raw, height = kept
            confirmations = max(self._tip_height - height + 1, 1)
            chainwork = self._main_chainwork(hash_, height, raw.bits)
            return self._shaped_header(hash_, raw, height, chainwork, confirmations)
        try:
            found = self.upstream("getblockheader", [hash_, True])
        except RpcFailure as failure:
            if failure.code != INTERNAL_ERROR:
                raise
            return self._off_chain_header(hash_)
        bits = int(found["bits"], 16)
        height = int(found["height"])
        found["bits"] = f"{bits:08x}"
        found["chainwork"] = f"{self._main_chainwork(hash_, height, bits):064x}"
        found.setdefault("mediantime", found.get("time"))
        prev = found.get("previousblockhash")
        if height > 0 and isinstance(prev, str) and len(prev) == 64:
            self._saw_height(height + max(int(found.get("confirmations", 1)), 1) - 1)
            raw = _RawHeader(
                version=int(found["version"]),
                prev=prev,
                merkleroot=str(found["merkleroot"]),
                time=int(found["time"]),
                bits=bits,
                nonce=int(found["nonce"]),
            )
            self._keep_headers([(hash_, raw, height)])
            self._fetch_headers_below(prev, height - 1)
        return dict(found)

    def _saw_height(self, height: int) -> None:
        self._tip_height = max(self._tip_height, height)

    def _keep_headers(self, headers: list[tuple[str, _RawHeader, int]]) -> None:
        with self._headers_lock:
            if len(self._headers) + len(headers) > MAX_KEPT_HEADERS:
                self._headers.clear()
            for hash_, raw, height in headers:
                self._headers[hash_] = (raw, height)

    def _fetch_headers_below(self, hash_: str, height: int) -> None:
        """Keep up to :data:`HEADER_PREFETCH` main-chain headers ending at ``hash_`` (at
        ``height``), from two calls to btcd, unless ``hash_`` is known already. Best effort:
        a failed call, or headers that do not link up (a reorg meanwhile), keep nothing."""
        with self._headers_lock:
            if hash_ in self._headers:
                return
        first = max(height - HEADER_PREFETCH + 1, 1)
        if first > height:
            return
        try:
            locator = self.upstream("getblockhash", [first - 1])
            found = self.upstream("getheaders", [[locator], hash_])
        except RpcFailure as failure:
            log.info("fetching the headers below %s failed: %s", hash_, failure)
            return
        if not isinstance(found, list) or len(found) != height - first + 1:
            return
        kept: list[tuple[str, _RawHeader, int]] = []
        prev = locator
        try:
            for offset, hex_header in enumerate(found):
                raw_bytes = bytes.fromhex(hex_header)
                raw = _parse_header(raw_bytes)
                if raw.prev != prev:
                    return
                prev = block_hash(raw_bytes)
                kept.append((prev, raw, first + offset))
        except (TypeError, ValueError, RpcFailure):
            return
        if prev == hash_:
            self._keep_headers(kept)

    @staticmethod
    def _shaped_header(
        hash_: str, header: _RawHeader, height: int, chainwork: int, confirmations: int
    ) -> dict[str, Any]:
        """A verbose ``getblockheader`` answer built from a raw header and its place."""
        return {
            "hash": hash_,
            "confirmations": confirmations,
            "height": height,
            "version": header.version,
            "versionHex": f"{header.version & 0xFFFFFFFF:08x}",
            "merkleroot": header.merkleroot,
            "time": header.time,
            "mediantime": header.time,
            "nonce": header.nonce,
            "bits": f"{header.bits:08x}",
            "difficulty": _difficulty(header.bits),
            "chainwork": f"{chainwork:064x}",
            "previousblockhash": header.prev,
        }

    def _raw_header(self, hash_: str) -> _RawHeader:
        raw = self.upstream("getblockheader", [hash_, False])
        try:
            header_bytes = bytes.fromhex(raw)
        except (TypeError, ValueError):
            raise RpcFailure(MISC_ERROR, "btcd sent a block header that is not hex") from None
        return _parse_header(header_bytes)

    def _main_chainwork(self, hash_: str, height: int, bits: int) -> int:
        if bits == REGTEST_BITS:
            return 2 * (height + 1)
        return self._summed_chainwork(hash_)

    def _summed_chainwork(self, hash_: str) -> int:
        """Chainwork as the sum of each header's work back to genesis, for non-regtest bits."""
        pending: list[tuple[str, int]] = []
        cursor = hash_
        while cursor != _ZERO_HASH and cursor not in self._positions:
            if len(pending) > _WALK_LIMIT:
                raise RpcFailure(MISC_ERROR, "chainwork walk too long")
            header = self._raw_header(cursor)
            pending.append((cursor, header.bits))
            cursor = header.prev
        height, total = self._positions.get(cursor, (-1, 0))
        for block, bits in reversed(pending):
            height += 1
            total += header_work(bits)
            self._remember(block, height, total)
        return total

    def _off_chain_header(self, hash_: str) -> dict[str, Any]:
        header = self._raw_header(hash_)
        position = self._positions.get(hash_)
        if position is None:
            position = self._walk_to_main_chain(hash_, header)
        height, chainwork = position
        return self._shaped_header(hash_, header, height, chainwork, -1)

    def _walk_to_main_chain(self, hash_: str, header: _RawHeader) -> tuple[int, int]:
        side: list[tuple[str, int]] = [(hash_, header.bits)]
        cursor = header.prev
        while True:
            if len(side) > _WALK_LIMIT:
                raise RpcFailure(MISC_ERROR, "side-chain walk too long")
            known = self._positions.get(cursor)
            if known is not None:
                height, chainwork = known
                break
            try:
                found = self.upstream("getblockheader", [cursor, True])
            except RpcFailure as failure:
                if failure.code != INTERNAL_ERROR:
                    raise
                parent = self._raw_header(cursor)
                side.append((cursor, parent.bits))
                cursor = parent.prev
                continue
            height = int(found["height"])
            chainwork = self._main_chainwork(cursor, height, int(found["bits"], 16))
            break
        for block, bits in reversed(side):
            height += 1
            chainwork += header_work(bits)
            self._remember(block, height, chainwork)
        return height, chainwork

    def _remember(self, hash_: str, height: int, chainwork: int) -> None:
        """A block's height and chainwork never change, so they are kept (bounded)."""
        if len(self._positions) > 100_000:
            self._positions.clear()
        self._positions[hash_] = (height, chainwork)

    def _getblock(self, params: list[Any]) -> Any:
        forwarded = list(params[:2])
        if len(forwarded) > 1 and isinstance(forwarded[1], bool):
            forwarded[1] = int(forwarded[1])
        raw_wanted = len(forwarded) == 2 and forwarded[1] == 0 and isinstance(forwarded[0], str)
        if raw_wanted:
            with self._raw_blocks_lock:
                cached = self._raw_blocks.get(forwarded[0])
                if cached is not None:
                    self._raw_blocks.move_to_end(forwarded[0])
                    return cached
        block = self.upstream("getblock", forwarded)
        if raw_wanted and isinstance(block, str):
            self._keep_raw_block(forwarded[0], block)
        if isinstance(block, dict) and "rawtx" in block:
            block["tx"] = block.pop("rawtx")
        return block

    def _keep_raw_block(self, hash_: str, raw: str) -> None:
        """Keep a block's hex by its hash, dropping the least recently asked beyond the bound."""
        with self._raw_blocks_lock:
            if hash_ in self._raw_blocks:
                return
            self._raw_blocks[hash_] = raw
            self._raw_block_chars += len(raw)
            while self._raw_block_chars > RAW_BLOCK_CACHE_CHARS and self._raw_blocks:
                _, dropped = self._raw_blocks.popitem(last=False)
                self._raw_block_chars -= len(dropped)

    def _getrawtransaction(self, params: list[Any]) -> Any:
        forwarded = list(params[:2])  # btcd has no third (block hash) parameter
        if len(forwarded) > 1 and isinstance(forwarded[1], bool):
            forwarded[1] = int(forwarded[1])
        return self.upstream("getrawtransaction", forwarded)

    def _sendrawtransaction(self, params: list[Any]) -> Any:
        if not params:
            raise RpcFailure(INVALID_PARAMS, "sendrawtransaction needs a transaction hex")
        return self.upstream("sendrawtransaction", [params[0]])

    def _getmempoolinfo(self, params: list[Any]) -> Any:
        info = self.upstream("getmempoolinfo", [])
        if not isinstance(info, dict):
            raise RpcFailure(MISC_ERROR, "btcd sent a getmempoolinfo that is not an object")
        info.update(
            loaded=True,
            usage=info.get("bytes", 0),
            maxmempool=300_000_000,
            mempoolminfee=MIN_FEE,
            minrelaytxfee=MIN_FEE,
            incrementalrelayfee=MIN_FEE,
        )
        return info

    def _getmempoolentry(self, params: list[Any]) -> Any:
        if not params or not isinstance(params[0], str):
            raise RpcFailure(INVALID_PARAMS, "getmempoolentry needs a txid")
        txid = params[0]
        entry = self._mempool_entry(txid)
        if entry is None:
            raise RpcFailure(NOT_FOUND, "Transaction not in mempool")
        fee = entry.get("fee", 0)
        return {
            "vsize": entry.get("vsize", entry.get("size")),
            "weight": entry.get("weight"),
            "time": entry.get("time"),
            "height": entry.get("height"),
            "fees": {"base": fee, "modified": fee, "ancestor": fee, "descendant": fee},
            "depends": entry.get("depends") or [],
            "spentby": [],
            "descendantcount": 1,
            "ancestorcount": 1,
            "bip125-replaceable": True,
            "unbroadcast": False,
        }

    def _mempool_entry(self, txid: str) -> dict[str, Any] | None:
        """btcd's verbose mempool holds each entry; LDK asks once per new txid, so it is cached
        about a second. A miss in a cache taken before this call refreshes it: a tx seen by
        ``getrawmempool`` a moment ago must not read as evicted."""
        asked = time.monotonic()
        with self._mempool_lock:
            cached = self._mempool
            if cached is not None and asked - cached[0] < MEMPOOL_CACHE_SECONDS:
                taken, pool = cached
                if txid in pool or taken >= asked:
                    return pool.get(txid)
            fetched_at = time.monotonic()
            pool = self.upstream("getrawmempool", [True])
            if not isinstance(pool, dict):
                raise RpcFailure(MISC_ERROR, "btcd sent a verbose mempool that is not an object")
            self._mempool = (fetched_at, pool)
            entry = pool.get(txid)
            return entry if isinstance(entry, dict) else None

    def _estimatesmartfee(self, params: list[Any]) -> Any:
        if not params or isinstance(params[0], bool) or not isinstance(params[0], int):
            raise RpcFailure(INVALID_PARAMS, "estimatesmartfee needs an integer conf_target")
        return {"feerate": FEE_RATE, "blocks": max(1, params[0])}

    def _getnetworkinfo(self, params: list[Any]) -> Any:
        return {
            "version": NETWORK_VERSION,
            "subversion": "/taskhold-btcd-shim/",
            "protocolversion": 70016,
            "localservices": "0000000000000000",
            "localrelay": True,
            "timeoffset": 0,
            "networkactive": True,
            "connections": 1,
            "networks": [],
            "relayfee": MIN_FEE,
            "incrementalfee": MIN_FEE,
            "localaddresses": [],
            "warnings": "",
        }


_METHODS = {
    "getblockchaininfo": BitcoindShim._getblockchaininfo,
    "getblockheader": BitcoindShim._getblockheader,
    "getblock": BitcoindShim._getblock,
    "getrawtransaction": BitcoindShim._getrawtransaction,
    "sendrawtransaction": BitcoindShim._sendrawtransaction,
    "getmempoolinfo": BitcoindShim._getmempoolinfo,
    "getmempoolentry": BitcoindShim._getmempoolentry,
    "estimatesmartfee": BitcoindShim._estimatesmartfee,
    "getnetworkinfo": BitcoindShim._getnetworkinfo,
}


class _ResumingConnection(http.client.HTTPSConnection):
    """An HTTPS connection that offers btcd the TLS session of an earlier one, and keeps the
    session it ends with (TLS 1.3 sends its resumption ticket after the handshake)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        context: ssl.SSLContext,
        timeout: float,
        session: ssl.SSLSession | None,
    ) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._tls_context = context
        self._offered = session
        self._tls_socket: ssl.SSLSocket | None = None

    def connect(self) -> None:
        plain = socket.create_connection((self.host, self.port), self.timeout)
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._tls_socket = self._tls_context.wrap_socket(
                plain, server_hostname=self.host, session=self._offered
            )
        except BaseException:
            plain.close()
            raise
        self.sock = self._tls_socket

    @property
    def session(self) -> ssl.SSLSession | None:
        """The session to offer next time. Kept apart from ``sock``, which ``getresponse()``
        drops for a reply that closes the connection while the body is still unread."""
        return self._tls_socket.session if self._tls_socket is not None else None


# -- downstream ------------------------------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, status: int, code: int, message: str, *, close: bool) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.close = status, code, message, close


class _Handler(BaseHTTPRequestHandler):
    """One downstream connection: keep-alive, every reply a JSON-RPC object with a length."""

    protocol_version = "HTTP/1.1"
    server_version = "taskhold-bitcoind-shim"
    sys_version = ""
    timeout = 600  # an idle keep-alive connection is dropped after this
    # Headers and body go out as two writes; with Nagle on, the body waits for the client's
    # delayed ACK of the headers (40 ms a reply on Linux), which made LDK's catch-up after a
    # hundred blocks take a minute.
    disable_nagle_algorithm = True

    @property
    def shim(self) -> BitcoindShim:
        return self.server.shim  # type: ignore[attr-defined, no-any-return]

    def do_POST(self) -> None:
        try:
            body = self._read_body()
        except _BadRequest as bad:
            self._reply(
                bad.status, None, {"code": bad.code, "message": bad.message}, None, bad.close
            )
            return
        if not self.shim.authorized(self.headers.get("Authorization")):
            error = {"code": MISC_ERROR, "message": "Unauthorized: wrong or missing RPC login"}
            self._reply(401, None, error, None, False, auth_challenge=True)
            return
        self._answer(body)

    def do_GET(self) -> None:
        error = {"code": INVALID_REQUEST, "message": "JSON-RPC is served by POST only"}
        self._reply(405, None, error, None, True)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise _BadRequest(411, INVALID_REQUEST, "Content-Length is required", close=True)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise _BadRequest(411, INVALID_REQUEST, "Content-Length is required", close=True)
        try:
            length = int(length_header)
        except ValueError:
            raise _BadRequest(400, INVALID_REQUEST, "bad Content-Length", close=True) from None
        if length < 0:
            raise _BadRequest(400, INVALID_REQUEST, "bad Content-Length", close=True)
        if length > MAX_BODY_BYTES:
            message = f"request body over {MAX_BODY_BYTES} bytes"
            raise _BadRequest(413, INVALID_REQUEST, message, close=True)
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BadRequest(400, INVALID_REQUEST, "request body cut short", close=True)
        return body

    def _answer(self, body: bytes) -> None:
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            self._reply(400, None, {"code": PARSE_ERROR, "message": "Parse error"}, None, False)
            return
        if not isinstance(request, dict):
            message = "the request must be one JSON object (no batches)"
            self._reply(400, None, {"code": INVALID_REQUEST, "message": message}, None, False)
            return
        request_id = request.get("id")
        method, params = request.get("method"), request.get("params", [])
        if params is None:
            params = []
        if not isinstance(method, str) or not isinstance(params, list):
            message = "the request needs a string method and list params"
            error = {"code": INVALID_REQUEST, "message": message}
            self._reply(400, None, error, request_id, False)
            return
        try:
            result = self.shim.dispatch(method, params)
        except RpcFailure as failure:
            error = {"code": failure.code, "message": failure.message}
            self._reply(500, None, error, request_id, False)
            return
        except Exception as exc:  # a reply btcd shaped unexpectedly: an error, not a traceback
            log.warning("shim %s failed: %s: %s", method, type(exc).__name__, exc)
            error = {"code": MISC_ERROR, "message": f"shim error in {method}: {type(exc).__name__}"}
            self._reply(500, None, error, request_id, False)
            return
        self._reply(200, result, None, request_id, False)

    def _reply(
        self,
        status: int,
        result: Any,
        error: dict[str, Any] | None,
        request_id: Any,
        close: bool,
        *,
        auth_challenge: bool = False,
    ) -> None:
        body = json.dumps({"result": result, "error": error, "id": request_id}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if auth_challenge:
            self.send_header("WWW-Authenticate", 'Basic realm="jsonrpc"')
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Requests too broken for JSON-RPC (bad request line, other verbs) still get a JSON body
        with a length, never http.server's HTML page."""
        error = {"code": INVALID_REQUEST, "message": message or HTTPStatus(code).phrase}
        if self.request_version == "HTTP/0.9":  # an unparsed request line: still frame the reply
            self.request_version = self.protocol_version
        self._reply(code, None, error, None, True)

    def log_message(self, format: str, *args: Any) -> None:
        """Request lines go to debug, never stderr (they carry no secrets, but are noise)."""
        log.debug("downstream: " + format, *args)


# -- process ---------------------------------------------------------------------------------


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _secret(given: str | None, variable: str, what: str) -> str:
    value = given if given is not None else os.environ.get(variable)
    if not value:
        raise SystemExit(f"{what} missing: pass it or set {variable}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the shim until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m taskhold.devnet.bitcoind_shim",
        description="bitcoind-compatible JSON-RPC in front of btcd, for LDK Node (devnet only).",
    )
    parser.add_argument("--btcd-rpc", type=_host_port, required=True, metavar="HOST:PORT")
    parser.add_argument("--btcd-cert", type=Path, required=True, help="btcd's rpc.cert")
    parser.add_argument("--btcd-user", help="or $TASKHOLD_SHIM_BTCD_USER")
    parser.add_argument("--btcd-pass", help="or $TASKHOLD_SHIM_BTCD_PASS (kept out of ps)")
    parser.add_argument("--listen", type=_host_port, default=(HOST, 0), metavar="HOST:PORT")
    parser.add_argument("--user", help="the login LDK uses; or $TASKHOLD_SHIM_USER")
    parser.add_argument("--pass", dest="password", help="or $TASKHOLD_SHIM_PASS (kept out of ps)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    btcd_host, btcd_port = args.btcd_rpc
    listen_host, listen_port = args.listen
    shim = BitcoindShim(
        btcd_host=btcd_host,
        btcd_port=btcd_port,
        btcd_cafile=args.btcd_cert,
        btcd_user=_secret(args.btcd_user, "TASKHOLD_SHIM_BTCD_USER", "btcd RPC user"),
        btcd_password=_secret(args.btcd_pass, "TASKHOLD_SHIM_BTCD_PASS", "btcd RPC password"),
        user=_secret(args.user, "TASKHOLD_SHIM_USER", "shim RPC user"),
        password=_secret(args.password, "TASKHOLD_SHIM_PASS", "shim RPC password"),
        listen_host=listen_host,
        listen_port=listen_port,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    port = shim.start()
    log.info("bitcoind shim on %s:%d, btcd at %s:%d", listen_host, port, btcd_host, btcd_port)
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        shim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
