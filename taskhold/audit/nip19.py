"""``npub`` decoding (NIP-19, bech32 per BIP-173), so the auditor needs no Nostr library."""

from __future__ import annotations

from .nip01 import is_hex64

__all__ = ["operator_hex"]

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_GENERATOR):
            if (top >> i) & 1:
                checksum ^= generator
    return checksum


def _decode_npub(text: str) -> bytes:
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    hrp, sep, data_part = text.rpartition("1")
    if not sep or hrp != "npub" or len(data_part) < 6:
        raise ValueError("not an npub")
    if any(ch not in _CHARSET for ch in data_part):
        raise ValueError("not bech32")
    data = [_CHARSET.index(ch) for ch in data_part]
    expanded = [ord(ch) >> 5 for ch in hrp] + [0] + [ord(ch) & 31 for ch in hrp]
    if _polymod(expanded + data) != 1:
        raise ValueError("bad checksum")
    accumulator, bits, out = 0, 0, bytearray()
    for value in data[:-6]:
        accumulator = (accumulator << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((accumulator >> bits) & 0xFF)
    if bits >= 5 or (accumulator << (8 - bits)) & 0xFF:
        raise ValueError("bad padding")
    if len(out) != 32:
        raise ValueError("not 32 bytes")
    return bytes(out)


def operator_hex(npub_or_hex: str) -> str:
    """The operator's x-only public key as 64 lowercase hex, from ``npub1…`` or hex."""
    text = npub_or_hex.strip()
    if text.startswith("nostr:"):
        text = text[len("nostr:") :]
    if is_hex64(text.lower()):
        return text.lower()
    try:
        return _decode_npub(text).hex()
    except ValueError as exc:
        raise ValueError(f"not an npub or 64-hex public key ({exc})") from None
