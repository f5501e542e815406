"""The server's swap records: one JSON file per swap under ``state_dir``, written atomically.

A record holds everything the server needs to finish a swap after a restart, its per-swap secret
key included (test infrastructure: a real swap service would keep keys in a signer). It is
written before the server pays an invoice, locks up coins or hands out a signature, so a crash
never leaves funds the server cannot find again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coincurve import PrivateKey

from taskhold.swaps.tree import SwapTree, SwapType, swap_tree

from .lifecycle import FINAL, Status, check_move

__all__ = ["RecordStore", "SwapRecord", "new_secret_key", "new_swap_id"]


def new_secret_key() -> bytes:
    """A fresh per-swap secret key (a valid secp256k1 scalar)."""
    while True:
        candidate = secrets.token_bytes(32)
        try:
            PrivateKey(candidate)
        except ValueError:  # pragma: no cover - 2**-128 chance
            continue
        return candidate


def new_swap_id() -> str:
    return secrets.token_hex(6)


@dataclass
class SwapRecord:
    """One swap as the server keeps it. Hex strings for bytes, so the file is plain JSON."""

    id: str
    kind: SwapType
    status: Status
    server_seckey_hex: str = field(repr=False)
    client_pubkey_hex: str
    preimage_hash_hex: str
    timeout_block_height: int
    created_height: int
    invoice: str
    invoice_amount_sat: int
    onchain_amount_sat: int
    """Submarine: the lockup amount expected from the client. Reverse: what the server locks."""
    address: str
    preimage_hex: str | None = None
    lockup_txid: str | None = None
    lockup_vout: int | None = None
    lockup_tx_hex: str | None = None
    lockup_amount_sat: int | None = None
    lockup_confirmed: bool = False
    claim_tx_hex: str | None = None
    """Submarine: the server's unsigned claim, fixed once so GET and POST /claim sign one tx."""
    claim_pending_since: float | None = None
    claim_txid: str | None = None
    refund_txid: str | None = None
    failure_reason: str | None = None
    failure_details: dict[str, int] | None = None
    history: list[str] = field(default_factory=list)

    @property
    def server_seckey(self) -> bytes:
        return bytes.fromhex(self.server_seckey_hex)

    @property
    def server_pubkey(self) -> bytes:
        key: bytes = PrivateKey(self.server_seckey).public_key.format(compressed=True)
        return key

    @property
    def preimage_hash(self) -> bytes:
        return bytes.fromhex(self.preimage_hash_hex)

    @property
    def final(self) -> bool:
        return self.status in FINAL[self.kind]

    def tree(self) -> SwapTree:
        """The swap tree, rebuilt from the facts (a fresh MuSig2 key cache every call)."""
        return swap_tree(
            self.kind,
            boltz_pubkey=self.server_pubkey,
            client_pubkey=bytes.fromhex(self.client_pubkey_hex),
            preimage_hash=self.preimage_hash,
            timeout_block_height=self.timeout_block_height,
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SwapRecord:
        data = dict(data)
        data["kind"] = SwapType(data["kind"])
        data["status"] = Status(data["status"])
        return cls(**data)


Listener = Callable[[SwapRecord], None]


class RecordStore:
    """All swaps in memory, each saved to ``<state_dir>/swaps/<id>.json`` on every change.

    ``on_status`` listeners hear every status change (the WebSocket pushes)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "swaps"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._swaps: dict[str, SwapRecord] = {}
        self.listeners: list[Listener] = []
        for path in sorted(self.dir.glob("*.json")):
            record = SwapRecord.from_json(json.loads(path.read_text()))
            self._swaps[record.id] = record

    def __iter__(self) -> Iterator[SwapRecord]:
        return iter(list(self._swaps.values()))

    def get(self, swap_id: str) -> SwapRecord | None:
        return self._swaps.get(swap_id)

    def by_preimage_hash(self, kind: SwapType, preimage_hash_hex: str) -> SwapRecord | None:
        for record in self._swaps.values():
            if record.kind is kind and record.preimage_hash_hex == preimage_hash_hex:
                return record
        return None

    def add(self, record: SwapRecord) -> None:
        if record.id in self._swaps:
            raise ValueError(f"swap {record.id} exists already")
        record.history.append(record.status.value)
        self._swaps[record.id] = record
        self.save(record)

    def remove(self, record: SwapRecord) -> None:
        """Forget a swap that never got anywhere (its creation failed before any funds moved)."""
        self._swaps.pop(record.id, None)
        (self.dir / f"{record.id}.json").unlink(missing_ok=True)

    def save(self, record: SwapRecord) -> None:
        """Write the record atomically: a temporary file, fsync, then rename over the old one."""
        path = self.dir / f"{record.id}.json"
        tmp = path.with_suffix(".tmp")
        # owner-only: the file holds the server's secret key for this swap
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            json.dump(record.to_json(), handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def move(self, record: SwapRecord, to: Status, **changes: Any) -> None:
        """Change the status (checked against the lifecycle) with any other fields, save, tell
        the listeners."""
        check_move(record.kind, record.status, to)
        for name, value in changes.items():
            if not hasattr(record, name):
                raise AttributeError(name)
            setattr(record, name, value)
        record.status = to
        record.history.append(to.value)
        self.save(record)
        for listener in list(self.listeners):
            listener(record)

    def update(self, record: SwapRecord, **changes: Any) -> None:
        """Change fields other than the status, and save."""
        for name, value in changes.items():
            if not hasattr(record, name) or name == "status":
                raise AttributeError(name)
            setattr(record, name, value)
        self.save(record)
