"""The client's durable record of each swap it is party to.

Boltz's rule: the keys, preimage, swap tree and timeout are stored durably *before* any funds
move, because without them a locked output can be neither claimed nor refunded. Each swap is
one JSON file, written whole to a temporary file, fsync'd, renamed over the old one and the
directory fsync'd: a crash leaves the old record or the new one, never half of either. Files
are 0600 in a 0700 directory; the secret key and preimage are left out of every ``repr`` so a
record never reaches a log.

A record's ``state`` moves only along :data:`TRANSITIONS`; the txid a step reports (lockup,
claim, refund) is recorded with it. ``open_swaps()`` lists the records whose swap may still
hold funds, for a client resuming after a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coincurve import PrivateKey

from taskhold.swaps.errors import SwapMismatch
from taskhold.swaps.tree import Network, SwapTree, SwapType, swap_tree

from .errors import RecordError
from .fields import is_swap_id
from .models import ReverseResponse, SubmarineResponse

__all__ = [
    "FINISHED",
    "TRANSITIONS",
    "TXID_OF",
    "SwapRecord",
    "SwapRecords",
    "reverse_record",
    "submarine_record",
]

TRANSITIONS: Mapping[SwapType, Mapping[str, frozenset[str]]] = {
    SwapType.SUBMARINE: {
        "created": frozenset({"lockup_sent", "failed"}),
        "lockup_sent": frozenset({"claimed", "refunded", "failed"}),
        "failed": frozenset({"refunded"}),  # a failed swap with a lockup still needs its refund
    },
    SwapType.REVERSE: {
        "created": frozenset({"invoice_handed", "expired"}),
        "invoice_handed": frozenset({"lockup_seen", "expired"}),
        "lockup_seen": frozenset({"claimed", "expired"}),
    },
}
"""``state -> states it may move to``; a state with no entry is final."""

TXID_OF: Mapping[tuple[SwapType, str], tuple[str, bool]] = {
    (SwapType.SUBMARINE, "lockup_sent"): ("lockup_txid", True),
    (SwapType.SUBMARINE, "claimed"): ("claim_txid", False),  # Boltz's claim; it may not say
    (SwapType.SUBMARINE, "refunded"): ("refund_txid", True),
    (SwapType.REVERSE, "lockup_seen"): ("lockup_txid", True),
    (SwapType.REVERSE, "claimed"): ("claim_txid", True),
}
"""``(kind, new state) -> (the txid field it records, whether the txid is required)``."""

FINISHED: Mapping[SwapType, frozenset[str]] = {
    SwapType.SUBMARINE: frozenset({"claimed", "refunded"}),
    SwapType.REVERSE: frozenset({"claimed", "expired"}),
}


_WHOLE = frozenset({"timeout_block_height", "expected_amount_sat", "invoice_amount_sat"})
_OPTIONAL = frozenset({"preimage_hex", "lockup_txid", "claim_txid", "refund_txid"})


@dataclass(frozen=True)
class SwapRecord:
    """Everything needed to claim or refund one swap without asking Boltz again."""

    kind: SwapType
    swap_id: str
    task_id: str
    network: str
    secret_key_hex: str = field(repr=False)
    boltz_pubkey_hex: str
    payment_hash_hex: str
    timeout_block_height: int
    claim_leaf_hex: str
    refund_leaf_hex: str
    address: str
    expected_amount_sat: int
    """Submarine: what we lock. Reverse: what Boltz locks for us."""
    invoice: str
    """Submarine: taskhold's hold invoice Boltz pays. Reverse: Boltz's invoice taskhold pays."""
    invoice_amount_sat: int
    preimage_hex: str | None = field(default=None, repr=False)
    state: str = "created"
    lockup_txid: str | None = None
    claim_txid: str | None = None
    refund_txid: str | None = None

    def __post_init__(self) -> None:
        if not is_swap_id(self.swap_id):
            raise RecordError(f"not a swap id: {self.swap_id[:70]!r}")
        if (self.kind is SwapType.REVERSE) != (self.preimage_hex is not None):
            raise RecordError("a reverse swap's record holds its preimage; a submarine's none")
        if self.state not in TRANSITIONS[self.kind] and self.state not in FINISHED[self.kind]:
            raise RecordError(f"{self.state!r} is not a state of a {self.kind.value} swap")

    @property
    def finished(self) -> bool:
        """No funds of this swap can still be locked (a failed submarine swap whose lockup
        was never sent is finished too)."""
        if self.kind is SwapType.SUBMARINE and self.state == "failed":
            return self.lockup_txid is None
        return self.state in FINISHED[self.kind]

    def moved(self, to: str, txid: str | None = None) -> SwapRecord:
        """This record after the step to ``to``; an illegal step raises ``RecordError``."""
        if to not in TRANSITIONS[self.kind].get(self.state, frozenset()):
            raise RecordError(f"a {self.kind.value} swap cannot go from {self.state!r} to {to!r}")
        txid_field, required = TXID_OF.get((self.kind, to), (None, False))
        if txid_field is None and txid is not None:
            raise RecordError(f"moving to {to!r} records no txid")
        if required and not txid:
            raise RecordError(f"moving to {to!r} needs its txid")
        if txid is not None and (len(txid) != 64 or not _is_hex(txid)):
            raise RecordError("a txid is 64 hex characters")
        changes: dict[str, Any] = {"state": to}
        if txid_field is not None and txid is not None:
            changes[txid_field] = txid
        return dataclasses.replace(self, **changes)

    def tree(self) -> SwapTree:
        """The swap tree rebuilt from the stored facts, to spend with after a restart; a
        record whose leaves or address no longer match its facts raises ``RecordError``."""
        try:
            tree = swap_tree(
                self.kind,
                boltz_pubkey=bytes.fromhex(self.boltz_pubkey_hex),
                client_pubkey=PrivateKey(bytes.fromhex(self.secret_key_hex)).public_key.format(),
                preimage_hash=bytes.fromhex(self.payment_hash_hex),
                timeout_block_height=self.timeout_block_height,
            )
            address = tree.address(Network(self.network))
        except ValueError:
            raise RecordError(f"the record of swap {self.swap_id} holds bad key facts") from None
        ours = (tree.claim_leaf.hex(), tree.refund_leaf.hex(), address)
        if ours != (self.claim_leaf_hex, self.refund_leaf_hex, self.address):
            raise RecordError(f"the record of swap {self.swap_id} does not match its own tree")
        return tree

    def to_json(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document["kind"] = self.kind.value
        return document

    @classmethod
    def from_json(cls, document: object) -> SwapRecord:
        if not isinstance(document, dict):
            raise RecordError("a swap record is a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        if set(document) - names:
            raise RecordError(f"unknown fields in a swap record: {sorted(set(document) - names)}")
        for name, value in document.items():
            if name in _WHOLE:
                fits = isinstance(value, int) and not isinstance(value, bool)
            else:
                fits = isinstance(value, str) or (value is None and name in _OPTIONAL)
            if not fits:
                raise RecordError(f"a swap record's {name} has the wrong type")
        try:
            return cls(**{**document, "kind": SwapType(str(document.get("kind")))})
        except (TypeError, ValueError) as exc:
            raise RecordError(f"not a swap record: {type(exc).__name__}") from None


def submarine_record(
    response: SubmarineResponse,
    tree: SwapTree,
    *,
    secret_key: bytes,
    invoice: str,
    invoice_amount_sat: int,
    payment_hash: bytes,
    task_id: str,
    network: Network,
) -> SwapRecord:
    """The record of a submarine swap ``verify_submarine`` accepted (``tree`` is its answer):
    store it before sending the lockup."""
    return SwapRecord(
        kind=SwapType.SUBMARINE,
        swap_id=response.id,
        task_id=task_id,
        network=network.value,
        secret_key_hex=secret_key.hex(),
        boltz_pubkey_hex=response.claim_public_key.hex(),
        payment_hash_hex=payment_hash.hex(),
        timeout_block_height=tree.timeout_block_height,
        claim_leaf_hex=tree.claim_leaf.hex(),
        refund_leaf_hex=tree.refund_leaf.hex(),
        address=tree.address(network),
        expected_amount_sat=response.expected_amount,
        invoice=invoice,
        invoice_amount_sat=invoice_amount_sat,
    )


def reverse_record(
    response: ReverseResponse,
    tree: SwapTree,
    *,
    secret_key: bytes,
    preimage: bytes,
    invoice_amount_sat: int,
    task_id: str,
    network: Network,
) -> SwapRecord:
    """The record of a reverse swap ``verify_reverse`` accepted: store it before handing
    Boltz's invoice to taskhold."""
    payment_hash = hashlib.sha256(preimage).digest()
    if (
        tree.claim_leaf
        != swap_tree(
            SwapType.REVERSE,
            boltz_pubkey=response.refund_public_key,
            client_pubkey=PrivateKey(secret_key).public_key.format(),
            preimage_hash=payment_hash,
            timeout_block_height=tree.timeout_block_height,
        ).claim_leaf
    ):
        raise SwapMismatch("the preimage or key is not the one this swap's tree was checked for")
    return SwapRecord(
        kind=SwapType.REVERSE,
        swap_id=response.id,
        task_id=task_id,
        network=network.value,
        secret_key_hex=secret_key.hex(),
        boltz_pubkey_hex=response.refund_public_key.hex(),
        payment_hash_hex=payment_hash.hex(),
        timeout_block_height=tree.timeout_block_height,
        claim_leaf_hex=tree.claim_leaf.hex(),
        refund_leaf_hex=tree.refund_leaf.hex(),
        address=tree.address(network),
        expected_amount_sat=response.onchain_amount,
        invoice=response.invoice,
        invoice_amount_sat=invoice_amount_sat,
        preimage_hex=preimage.hex(),
    )


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


class SwapRecords:
    """One directory of swap records, one ``<swap id>.json`` each."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"SwapRecords({str(self.directory)!r})"

    def _path(self, swap_id: str) -> Path:
        if not is_swap_id(swap_id):
            raise RecordError(f"not a swap id: {swap_id[:70]!r}")
        return self.directory / f"{swap_id}.json"

    def _write(self, record: SwapRecord) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self._path(record.swap_id)
        temp = self.directory / f".{record.swap_id}.{os.getpid()}.tmp"
        data = json.dumps(record.to_json(), indent=1, sort_keys=True).encode()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def create(self, record: SwapRecord) -> SwapRecord:
        """Store a new swap's record; call before funding the lockup or handing the invoice."""
        if record.state != "created":
            raise RecordError("a new record starts in 'created'")
        if self._path(record.swap_id).exists():
            raise RecordError(f"swap {record.swap_id} is already recorded")
        self._write(record)
        return record

    def get(self, swap_id: str) -> SwapRecord:
        path = self._path(swap_id)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise RecordError(f"no record of swap {swap_id}") from None
        try:
            document = json.loads(text)
        except ValueError:
            raise RecordError(f"the record of swap {swap_id} is not JSON") from None
        return SwapRecord.from_json(document)

    def move(self, swap_id: str, to: str, *, txid: str | None = None) -> SwapRecord:
        """Record a step of the swap (and its txid) durably; returns the new record."""
        record = self.get(swap_id).moved(to, txid)
        self._write(record)
        return record

    def all(self) -> list[SwapRecord]:
        if not self.directory.is_dir():
            return []
        return [
            self.get(path.stem)
            for path in sorted(self.directory.glob("*.json"))
            if not path.name.startswith(".")
        ]

    def open_swaps(self) -> list[SwapRecord]:
        """Swaps that may still hold funds: to resume after a crash. ``created`` ones are
        included, since the lockup may have gone out just before the crash (look for it on
        chain at the record's address). A damaged record raises ``RecordError`` rather than
        being skipped: a swap silently dropped from this list could be a lockup never
        refunded."""
        return [record for record in self.all() if not record.finished]
