"""A faster copy of bytes into the buffers nostr-sdk's Python bindings hand to Rust.

The bindings (uniffi-generated, nostr-sdk 0.45) copy every string they pass to Rust one byte
at a time in Python: ``Event.from_json`` of a log entry a few kilobytes long spent about two
milliseconds there, more than the rest of publishing it, and the event loop that serves the
API pays it (the publisher runs in the ``serve`` process). :func:`install` replaces that loop
with one ``memmove`` into the same buffer, after the same capacity check; the bytes Rust reads
are the same. It patches nothing when the bindings do not have the expected shape (another
nostr-sdk version), so a new release is slower, never wrong.
"""

from __future__ import annotations

import ctypes
from typing import Any

import nostr_sdk.nostr_sdk as bindings

__all__ = ["install", "installed"]

_BUILDER: Any = getattr(bindings, "_UniffiRustBufferBuilder", None)
_ORIGINAL_WRITE = getattr(_BUILDER, "write", None)


def _write(self: Any, value: bytes | bytearray | memoryview) -> None:
    data = bytes(value)
    size = len(data)
    with self._reserve(size):
        if size:
            start = ctypes.cast(self.rbuf.data, ctypes.c_void_p).value
            assert start is not None, "a reserved buffer has memory"
            ctypes.memmove(start + self.rbuf.len, data, size)


def installed() -> bool:
    """Whether the bindings copy with :func:`_write`."""
    return _BUILDER is not None and _BUILDER.write is _write


def install() -> bool:
    """Use :func:`_write` in the bindings if they have the shape it was written for; True if
    they do (now or already)."""
    if _BUILDER is None or _ORIGINAL_WRITE is None:
        return False
    if not all(hasattr(_BUILDER, name) for name in ("_reserve", "finalize")):
        return False
    _BUILDER.write = _write
    return True
