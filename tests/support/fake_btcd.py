"""A fake btcd for the bitcoind shim's tests, and an LDK-style client to call the shim with.

:class:`FakeBtcd` imitates btcd's RPC framing exactly where it breaks bitcoind clients: TLS with
a self-signed certificate, replies with no ``Content-Length`` and ``Connection: close``, and no
reply body at all for a request without ``"jsonrpc"``. Its chain is a list of 80-byte headers the
test builds; it counts the calls in flight so the shim's bound can be asserted.

:class:`LdkStyleClient` speaks like LDK Node's ``lightning-block-sync``: one keep-alive socket,
no ``"jsonrpc"``, a string id; it insists on a reason phrase and ``Content-Length``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "GENESIS_MERKLE",
    "REGTEST_GENESIS_HASH",
    "FakeBtcd",
    "FakeError",
    "LdkStyleClient",
    "Reply",
    "header_bytes",
    "rehash_json_header",
    "self_signed_cert",
    "wait_until",
]

REGTEST_GENESIS_HASH = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
GENESIS_MERKLE = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"


def header_bytes(version: int, prev: str, merkle: str, time_: int, bits: int, nonce: int) -> bytes:
    """An 80-byte header from display-order hashes."""
    return struct.pack(
        "<i32s32sIII",
        version,
        bytes.fromhex(prev)[::-1],
        bytes.fromhex(merkle)[::-1],
        time_,
        bits,
        nonce,
    )


def _hash(raw: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()


def rehash_json_header(fields: dict[str, Any]) -> str:
    """What LDK does with a ``getblockheader`` answer: rebuild the header from the JSON fields
    (``bits`` read as 8 big-endian hex digits) and hash it."""
    bits_hex = fields["bits"]
    assert len(bits_hex) == 8, bits_hex
    prev = fields.get("previousblockhash") or "0" * 64
    raw = header_bytes(
        fields["version"],
        prev,
        fields["merkleroot"],
        fields["time"],
        int(bits_hex, 16),
        fields["nonce"],
    )
    return _hash(raw)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN, like btcd's own ``rpc.cert``) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake btcd")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "rpc.cert", directory / "rpc.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class FakeError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class _Block:
    raw: bytes
    height: int
    main: bool


@dataclass
class _Chain:
    blocks: dict[str, _Block] = field(default_factory=dict)
    tip: str = ""

    def add(self, raw: bytes, *, main: bool = True) -> str:
        prev = raw[4:36][::-1].hex()
        height = self.blocks[prev].height + 1 if prev in self.blocks else 0
        block_hash = _hash(raw)
        self.blocks[block_hash] = _Block(raw=raw, height=height, main=main)
        if main:
            self.tip = block_hash
        return block_hash


class FakeBtcd:
    """btcd's RPC as LDK would meet it (TLS, no lengths, silent without ``jsonrpc``)."""

    def __init__(self, cert: Path, key: Path, *, user: str = "btcd", password: str = "btcd-pw"):
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(cert, key)
        self.user, self.password = user, password
        self.chain = _Chain()
        self.mempool: dict[str, dict[str, Any]] = {}
        self.handlers: dict[str, Callable[[list[Any]], Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.busy_replies = 0
        """How many of the next requests get btcd's 503 for too many RPC clients."""
        self.resumed: list[bool] = []
        """Per accepted connection: whether it resumed an earlier TLS session."""
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> int:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake._serve(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._server = server
        self.port = int(server.server_address[1])
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self.gate.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def calls(self, method: str) -> list[list[Any]]:
        """The params of every call of ``method``, in order."""
        return [r["params"] for r in self.requests if r.get("method") == method]

    # -- the wire ----------------------------------------------------------------------------

    def _serve(self, plain: socket.socket) -> None:
        try:
            conn = self._tls.wrap_socket(plain, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.resumed.append(conn.session_reused)
        try:
            stream = conn.makefile("rb")
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = stream.readline()
                if not line:
                    return
                head += line
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (h.partition(":") for h in lines[1:] if h)
            }
            body = stream.read(int(headers.get("content-length", "0")))
            expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if headers.get("authorization") != expected:
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n")
                return
            request = json.loads(body)
            self.requests.append(request)
            with self._lock:
                busy, self.busy_replies = self.busy_replies > 0, max(self.busy_replies - 1, 0)
            if busy:
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n")
                return
            prefix = (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n"
            )
            if request.get("jsonrpc") not in ("1.0", "2.0"):
                conn.sendall(prefix + b"\n")  # btcd: the marshalled reply is dropped
                return
            reply = self._call(request)
            conn.sendall(prefix + json.dumps(reply).encode() + b"\n")
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.gate.wait()
            result = self._method(request["method"], request.get("params") or [])
            return {"result": result, "error": None, "id": request.get("id")}
        except FakeError as error:
            failure = {"code": error.code, "message": error.message}
            return {"result": None, "error": failure, "id": request.get("id")}
        finally:
            with self._lock:
                self.in_flight -= 1

    # -- methods, shaped as btcd shapes them -------------------------------------------------

    def _method(self, method: str, params: list[Any]) -> Any:
        if method in self.handlers:
            return self.handlers[method](params)
        handler = getattr(self, "_rpc_" + method, None)
        if handler is None:
            raise FakeError(-32601, "Method not found")
        return handler(params)

    def _block(self, block_hash: str) -> _Block:
        block = self.chain.blocks.get(block_hash)
        if block is None:
            raise FakeError(-5, "Block not found")
        return block

    def _rpc_getblockchaininfo(self, params: list[Any]) -> Any:
        tip = self.chain.blocks[self.chain.tip]
        return {
            "chain": "regtest",
            "blocks": tip.height,
            "headers": tip.height,
            "bestblockhash": self.chain.tip,
        }

    def _rpc_getblockhash(self, params: list[Any]) -> Any:
        for block_hash, block in self.chain.blocks.items():
            if block.main and block.height == params[0]:
                return block_hash
        raise FakeError(-1, "Block number out of range")

    def _rpc_getheaders(self, params: list[Any]) -> Any:
        """btcd's: the raw main-chain headers after the first known locator, up to the stop
        hash or 2,000."""
        locators, stop = params[0], params[1]
        main = sorted(
            ((block.height, h) for h, block in self.chain.blocks.items() if block.main),
        )
        start = next((self.chain.blocks[h].height for h in locators if h in self.chain.blocks), -1)
        headers: list[str] = []
        for height, block_hash in main:
            if height <= start:
                continue
            headers.append(self.chain.blocks[block_hash].raw.hex())
            if block_hash == stop or len(headers) == 2000:
                break
        return headers

    def _rpc_getblockheader(self, params: list[Any]) -> Any:
        block = self._block(params[0])
        verbose = params[1] if len(params) > 1 else True
        if not verbose:
            return block.raw.hex()
        if not block.main:
            raise FakeError(-32603, "Block number out of range")
        raw = block.raw
        (version,) = struct.unpack_from("<i", raw, 0)
        time_, bits, nonce = struct.unpack_from("<III", raw, 68)
        return {
            "hash": params[0],
            "confirmations": self.chain.blocks[self.chain.tip].height - block.height + 1,
            "height": block.height,
            "version": version,
            "versionHex": f"{version:08x}",
            "merkleroot": raw[36:68][::-1].hex(),
            "time": time_,
            "nonce": nonce,
            "bits": format(bits, "x"),  # btcd: strconv.FormatInt, not zero-padded
            "difficulty": 1.0,
            "previousblockhash": raw[4:36][::-1].hex(),
        }

    def _rpc_getblock(self, params: list[Any]) -> Any:
        verbosity = params[1] if len(params) > 1 else 1
        if isinstance(verbosity, bool):
            raise FakeError(-32602, "invalid verbosity: must be an integer")
        block = self._block(params[0])
        if verbosity == 0:
            return block.raw.hex() + "00"
        return {"hash": params[0], "height": block.height, "rawtx": [{"txid": "aa" * 32}]}

    def _rpc_getrawtransaction(self, params: list[Any]) -> Any:
        if len(params) > 2:
            raise FakeError(-32602, "too many params")
        if len(params) > 1 and isinstance(params[1], bool):
            raise FakeError(-32602, "verbose must be an integer")
        if params[0] not in self.mempool:
            raise FakeError(-5, "No information available about transaction")
        return "0200" + params[0]

    def _rpc_getrawmempool(self, params: list[Any]) -> Any:
        if params and params[0]:
            return dict(self.mempool)
        return list(self.mempool)

    def _rpc_getmempoolinfo(self, params: list[Any]) -> Any:
        return {"size": len(self.mempool), "bytes": 250 * len(self.mempool)}

    def _rpc_getmempoolentry(self, params: list[Any]) -> Any:
        raise FakeError(-1, "Command unimplemented")

    def _rpc_getnetworkinfo(self, params: list[Any]) -> Any:
        raise FakeError(-1, "Command unimplemented")

    def _rpc_sendrawtransaction(self, params: list[Any]) -> Any:
        if len(params) != 1:
            raise FakeError(-32602, "wrong number of params")
        return "ab" * 32

    def _rpc_gettxout(self, params: list[Any]) -> Any:
        return None


@dataclass
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    body: dict[str, Any]


class LdkStyleClient:
    """Like LDK's RPC client: one keep-alive socket, no ``jsonrpc``, a string id."""

    def __init__(self, port: int, user: str, password: str, *, host: str = "127.0.0.1") -> None:
        self._address = (host, port)
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._socket: socket.socket | None = None
        self._stream: Any = None
        self._next_id = 0
        self.connections = 0

    def close(self) -> None:
        if self._socket is not None:
            self._stream.close()
            self._socket.close()
            self._socket = None

    def __enter__(self) -> LdkStyleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: list[Any] | None = None) -> Reply:
        self._next_id += 1
        body = json.dumps(
            {"method": method, "params": params or [], "id": str(self._next_id)}
        ).encode()
        reply = self.send_raw(body)
        assert reply.body["id"] == str(self._next_id), reply.body
        return reply

    def result(self, method: str, params: list[Any] | None = None) -> Any:
        reply = self.call(method, params)
        assert reply.body["error"] is None, reply.body
        return reply.body["result"]

    def send_raw(
        self, body: bytes, *, auth: str | None = None, headers: str | None = None
    ) -> Reply:
        if self._socket is None:
            self._socket = socket.create_connection(self._address, timeout=30)
            self._stream = self._socket.makefile("rb")
            self.connections += 1
        head = (
            "POST / HTTP/1.1\r\n"
            f"Host: {self._address[0]}:{self._address[1]}\r\n"
            f"Authorization: {auth if auth is not None else self._auth}\r\n"
            "Connection: keep-alive\r\n"
            "Content-Type: application/json\r\n"
        )
        head += headers if headers is not None else f"Content-Length: {len(body)}\r\n"
        return self.send_bytes(head.encode() + b"\r\n" + body)

    def send_bytes(self, raw: bytes) -> Reply:
        """Whatever bytes the test wants on the socket, then one reply."""
        if self._socket is None:
            self._socket = socket.create_connection(self._address, timeout=30)
            self._stream = self._socket.makefile("rb")
            self.connections += 1
        self._socket.sendall(raw)
        return self.read_reply()

    def read_reply(self) -> Reply:
        status_line = self._stream.readline().decode("latin-1").rstrip("\r\n")
        version, status, reason = status_line.split(" ", 2)
        assert version.startswith("HTTP/1."), status_line
        assert reason, f"no reason phrase: {status_line!r}"
        headers: dict[str, str] = {}
        while True:
            line = self._stream.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        assert "content-length" in headers, headers  # LDK reads no body without it
        length = int(headers["content-length"])
        assert 0 < length <= 8_032_000
        body = json.loads(self._stream.read(length))
        assert "result" in body and "error" in body and "id" in body, body
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(int(status), reason, headers, body)


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition`` until true; fail after ``seconds`` (a bound, never an assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
