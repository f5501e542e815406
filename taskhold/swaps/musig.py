"""MuSig2 (BIP-327) over coincurve's bundled libsecp256k1, for the 2-of-2 key path of a swap.

coincurve exposes the musig module only through its private cffi handle, so this module is the
one place that touches it (pinned to coincurve 21.0.0, checked by the BIP-327 vector tests).
Boltz aggregates keys in the order [Boltz key, client key] as given, never sorted: the order is
part of the address, so it is kept exactly as the caller passes it.

A secret nonce signs at most once: reusing one with a second message leaks the private key, so
:class:`SecretNonce` refuses a second use before libsecp256k1 is ever called with it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from .errors import MusigError

__all__ = [
    "KeyAgg",
    "MusigError",
    "NoncePair",
    "SecretNonce",
    "Session",
    "nonce_gen",
    "verify_schnorr",
]

_CTX = GLOBAL_CONTEXT.ctx
PUBNONCE_SIZE = 66
PARTIAL_SIG_SIZE = 32


def _pubkey(compressed: bytes) -> Any:
    if len(compressed) != 33:
        raise MusigError("a public key must be 33 bytes (compressed)")
    point = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ec_pubkey_parse(_CTX, point, compressed, len(compressed)):
        raise MusigError("not a valid public key")
    return point


def _serialize_pubkey(point: Any) -> bytes:
    out = ffi.new("unsigned char[33]")
    size = ffi.new("size_t *", 33)
    lib.secp256k1_ec_pubkey_serialize(_CTX, out, size, point, lib.SECP256K1_EC_COMPRESSED)
    return bytes(ffi.buffer(out, 33))


def _bytes32(value: bytes, what: str) -> bytes:
    if len(value) != 32:
        raise MusigError(f"{what} must be 32 bytes")
    return value


def _public_of(seckey: bytes) -> bytes:
    try:
        return PrivateKey(_bytes32(seckey, "a secret key")).public_key.format(compressed=True)
    except ValueError as exc:
        raise MusigError("not a valid secret key") from exc


class KeyAgg:
    """The aggregate of the signers' keys in the given order, plus any x-only tweaks applied.

    ``tweak_xonly`` mutates the cache: the swap output key is the aggregate tweaked once with
    the taproot tweak, and signing must use the same tweaked cache."""

    def __init__(self, pubkeys: Sequence[bytes]) -> None:
        if not pubkeys:
            raise MusigError("at least one public key is needed")
        self.pubkeys = tuple(bytes(k) for k in pubkeys)
        points = [_pubkey(k) for k in self.pubkeys]
        array = ffi.new("secp256k1_pubkey *[]", points)
        self._cache = ffi.new("secp256k1_musig_keyagg_cache *")
        agg = ffi.new("secp256k1_xonly_pubkey *")
        if not lib.secp256k1_musig_pubkey_agg(_CTX, agg, self._cache, array, len(points)):
            raise MusigError("key aggregation failed")
        self.internal_xonly = self.xonly()

    def pubkey(self) -> bytes:
        """The current (possibly tweaked) aggregate key, compressed (33 bytes)."""
        point = ffi.new("secp256k1_pubkey *")
        lib.secp256k1_musig_pubkey_get(_CTX, point, self._cache)
        return _serialize_pubkey(point)

    def xonly(self) -> bytes:
        """The current (possibly tweaked) aggregate key, x-only (32 bytes)."""
        return self.pubkey()[1:]

    def tweak_xonly(self, tweak: bytes) -> bytes:
        """Apply a BIP-341 style x-only tweak; returns the tweaked key, compressed."""
        point = ffi.new("secp256k1_pubkey *")
        if not lib.secp256k1_musig_pubkey_xonly_tweak_add(
            _CTX, point, self._cache, _bytes32(tweak, "a tweak")
        ):
            raise MusigError("the tweak is invalid")
        return _serialize_pubkey(point)

    def index_of(self, pubkey: bytes) -> int:
        try:
            return self.pubkeys.index(bytes(pubkey))
        except ValueError:
            raise MusigError("that key is not one of the signers") from None


class SecretNonce:
    """A secret nonce that signs once; a second use is refused."""

    def __init__(self, raw: Any, pubkey: bytes) -> None:
        self._raw: Any | None = raw
        self.pubkey = pubkey

    @property
    def used(self) -> bool:
        return self._raw is None

    def take(self) -> Any:
        if self._raw is None:
            raise MusigError("this secret nonce was already used; make a new one")
        raw, self._raw = self._raw, None
        return raw


@dataclass(frozen=True)
class NoncePair:
    secret: SecretNonce
    public: bytes  # 66 bytes, the form sent to the other signer


def nonce_gen(seckey: bytes, key_agg: KeyAgg | None = None, msg: bytes | None = None) -> NoncePair:
    """Fresh nonces for one signing session; randomness from the OS (never a counter)."""
    pub = _public_of(seckey)
    secnonce = ffi.new("secp256k1_musig_secnonce *")
    pubnonce = ffi.new("secp256k1_musig_pubnonce *")
    secrand = ffi.new("unsigned char[32]", os.urandom(32))
    ok = lib.secp256k1_musig_nonce_gen(
        _CTX,
        secnonce,
        pubnonce,
        secrand,
        seckey,
        _pubkey(pub),
        _bytes32(msg, "a message") if msg is not None else ffi.NULL,
        key_agg._cache if key_agg is not None else ffi.NULL,
        ffi.NULL,
    )
    if not ok:
        raise MusigError("nonce generation failed")
    return NoncePair(SecretNonce(secnonce, pub), _serialize_pubnonce(pubnonce))


def _serialize_pubnonce(pubnonce: Any) -> bytes:
    out = ffi.new("unsigned char[66]")
    lib.secp256k1_musig_pubnonce_serialize(_CTX, out, pubnonce)
    return bytes(ffi.buffer(out, PUBNONCE_SIZE))


def _parse_pubnonce(raw: bytes) -> Any:
    if len(raw) != PUBNONCE_SIZE:
        raise MusigError("a public nonce must be 66 bytes")
    pubnonce = ffi.new("secp256k1_musig_pubnonce *")
    if not lib.secp256k1_musig_pubnonce_parse(_CTX, pubnonce, raw):
        raise MusigError("not a valid public nonce")
    return pubnonce


def _parse_partial(raw: bytes) -> Any:
    if len(raw) != PARTIAL_SIG_SIZE:
        raise MusigError("a partial signature must be 32 bytes")
    sig = ffi.new("secp256k1_musig_partial_sig *")
    if not lib.secp256k1_musig_partial_sig_parse(_CTX, sig, raw):
        raise MusigError("not a valid partial signature")
    return sig


class Session:
    """One signing session: the message, the aggregate nonce and the (tweaked) key cache.

    ``pubnonces`` are in the same order as the keys of ``key_agg``."""

    def __init__(self, key_agg: KeyAgg, pubnonces: Sequence[bytes], msg: bytes) -> None:
        if len(pubnonces) != len(key_agg.pubkeys):
            raise MusigError("one public nonce per signer is needed")
        self.key_agg = key_agg
        self.msg = _bytes32(msg, "a message")
        self.pubnonces = tuple(bytes(n) for n in pubnonces)
        parsed = [_parse_pubnonce(n) for n in self.pubnonces]
        aggnonce = ffi.new("secp256k1_musig_aggnonce *")
        array = ffi.new("secp256k1_musig_pubnonce *[]", parsed)
        if not lib.secp256k1_musig_nonce_agg(_CTX, aggnonce, array, len(parsed)):
            raise MusigError("nonce aggregation failed")
        out = ffi.new("unsigned char[66]")
        lib.secp256k1_musig_aggnonce_serialize(_CTX, out, aggnonce)
        self.aggnonce = bytes(ffi.buffer(out, PUBNONCE_SIZE))
        self._session = ffi.new("secp256k1_musig_session *")
        if not lib.secp256k1_musig_nonce_process(
            _CTX, self._session, aggnonce, self.msg, key_agg._cache
        ):
            raise MusigError("nonce processing failed")

    def sign(self, secnonce: SecretNonce, seckey: bytes) -> bytes:
        """Our 32-byte partial signature; consumes ``secnonce``."""
        keypair = ffi.new("secp256k1_keypair *")
        if not lib.secp256k1_keypair_create(_CTX, keypair, _bytes32(seckey, "a secret key")):
            raise MusigError("not a valid secret key")
        # libsecp256k1 aborts the process on a key/nonce mismatch, so it is refused here first
        if _public_of(seckey) != secnonce.pubkey:
            raise MusigError("that secret key does not own this nonce")
        self.key_agg.index_of(secnonce.pubkey)
        raw = secnonce.take()
        sig = ffi.new("secp256k1_musig_partial_sig *")
        if not lib.secp256k1_musig_partial_sign(
            _CTX, sig, raw, keypair, self.key_agg._cache, self._session
        ):
            raise MusigError("partial signing failed (the secret key does not match the nonce)")
        out = ffi.new("unsigned char[32]")
        lib.secp256k1_musig_partial_sig_serialize(_CTX, out, sig)
        return bytes(ffi.buffer(out, PARTIAL_SIG_SIZE))

    def verify_partial(self, partial: bytes, signer_pubkey: bytes) -> bool:
        """Whether ``partial`` is a valid partial signature of ``signer_pubkey``."""
        index = self.key_agg.index_of(signer_pubkey)
        sig = _parse_partial(partial)
        return bool(
            lib.secp256k1_musig_partial_sig_verify(
                _CTX,
                sig,
                _parse_pubnonce(self.pubnonces[index]),
                _pubkey(signer_pubkey),
                self.key_agg._cache,
                self._session,
            )
        )

    def aggregate(self, partials: Sequence[bytes]) -> bytes:
        """The 64-byte BIP-340 signature under the (tweaked) aggregate key."""
        parsed = [_parse_partial(p) for p in partials]
        array = ffi.new("secp256k1_musig_partial_sig *[]", parsed)
        out = ffi.new("unsigned char[64]")
        if not lib.secp256k1_musig_partial_sig_agg(_CTX, out, self._session, array, len(parsed)):
            raise MusigError("partial signature aggregation failed")
        return bytes(ffi.buffer(out, 64))


def verify_schnorr(xonly: bytes, msg: bytes, sig: bytes) -> bool:
    """BIP-340 verification of ``sig`` over a 32-byte ``msg`` under x-only key ``xonly``."""
    from coincurve.keys import PublicKeyXOnly

    try:
        return bool(PublicKeyXOnly(xonly).verify(sig, msg))
    except ValueError:
        return False
