"""The simulated network on disk, so a restarted ``taskhold serve --lightning sim`` finds the
invoices, held HTLCs, payments and balances it had, as a restarted lnd finds its channel state.

The network saves after every change (:attr:`SimNetwork.on_change`), before the call that made
the change returns, so whatever the caller saw is on disk even if the process is killed right
after. A save is atomic: a temporary file is written and fsynced, then renamed over the old one.

Records are (de)serialised generically from their dataclass fields and type hints, so a field
added to :mod:`taskhold.lightning.sim_records` is kept without touching this module. Fields
holding asyncio objects (events, subscriber queues) are runtime plumbing: they are rebuilt empty
by their default factories. A payment record that an invoice shares with its payer's payment
table is stored once and referenced, so after a restore a settle still updates both.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import os
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sim_network import DEFAULT_HTLC_SLOTS, DEFAULT_INBOUND_MSAT
from .sim_records import AutoCancel, InvoiceRecord, PaymentRecord, SettledPayment

if TYPE_CHECKING:
    from .sim import SimNode
    from .sim_network import SimNetwork

__all__ = ["SimFile", "restore", "snapshot"]

FORMAT = 1
"""Bumped when the layout changes in a way old files cannot be read with."""


class SimFile:
    """One JSON file holding the network; rewritten atomically, only when its content changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: str | None = None

    def load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        data: dict[str, Any] = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"{self.path}: simulator state format {data.get('format')!r}")
        self._written = text
        return data

    def save(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        if text == self._written:
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
        self._written = text


def snapshot(network: SimNetwork, nodes: dict[str, SimNode]) -> dict[str, Any]:
    """Everything the network and its nodes must remember, as JSON-ready data."""
    records: list[PaymentRecord] = []
    refs: dict[int, int] = {}
    shared = list(network._payments.values()) + [
        i.payment for i in network._invoices.values() if i.payment is not None
    ]
    for record in shared:
        if id(record) not in refs:
            refs[id(record)] = len(records)
            records.append(record)
    return {
        "format": FORMAT,
        "height": network._height,
        "balances_msat": dict(network._balances),
        "inbound_msat": dict(network._inbound),
        "htlc_slots": dict(network._htlc_slots),
        "payment_records": [_encode(record, {}) for record in records],
        "payments": [[payer, refs[id(p)]] for (payer, _), p in network._payments.items()],
        "invoices": [_encode(invoice, refs) for invoice in network._invoices.values()],
        "auto_cancelled": [_encode(entry, refs) for entry in network.auto_cancelled],
        "settled_payments": [_encode(entry, refs) for entry in network.settled_payments],
        "failures_queued": list(network._failures_queued),
        "unroutable": sorted(network._unroutable),
        "keeps_holds": sorted(network._keeps_holds),
        "invoice_counts": {name: node._invoice_count for name, node in nodes.items()},
    }


def restore(network: SimNetwork, nodes: dict[str, SimNode], data: dict[str, Any]) -> None:
    """Put a :func:`snapshot` back into a freshly created network and its nodes."""
    records = [_decode(PaymentRecord, raw, []) for raw in data["payment_records"]]
    network._height = data["height"]
    network._balances = dict(data["balances_msat"])
    inbound, slots = data.get("inbound_msat", {}), data.get("htlc_slots", {})
    network._inbound = {k: inbound.get(k, DEFAULT_INBOUND_MSAT) for k in network._balances}
    network._htlc_slots = {k: slots.get(k, DEFAULT_HTLC_SLOTS) for k in network._balances}
    network._payments = {
        (payer, records[ref].payment_hash): records[ref] for payer, ref in data["payments"]
    }
    invoices = [_decode(InvoiceRecord, raw, records) for raw in data["invoices"]]
    network._invoices = {(i.issuer, i.payment_hash): i for i in invoices}
    network.auto_cancelled = [_decode(AutoCancel, raw, records) for raw in data["auto_cancelled"]]
    network.settled_payments = [
        _decode(SettledPayment, raw, records) for raw in data["settled_payments"]
    ]
    network._failures_queued = list(data["failures_queued"])
    network._unroutable = set(data["unroutable"])
    network._keeps_holds = set(data.get("keeps_holds", ()))
    for name, count in data["invoice_counts"].items():
        if name in nodes:
            nodes[name]._invoice_count = count


def _runtime(hint: Any) -> bool:
    """The hint names an asyncio type somewhere (``asyncio.Event``, ``list[asyncio.Queue]``)."""
    origin = typing.get_origin(hint) or hint
    if isinstance(origin, type) and origin.__module__.startswith("asyncio"):
        return True
    return any(_runtime(arg) for arg in typing.get_args(hint))


@functools.cache
def _fields(cls: type[Any]) -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls) if not _runtime(hints[f.name])]


def _encode(value: Any, refs: dict[int, int]) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_encode(item, refs) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if id(value) in refs:
            return {"$ref": refs[id(value)]}
        return {name: _encode(getattr(value, name), refs) for name, _ in _fields(type(value))}
    raise TypeError(f"the simulator cannot store a {type(value).__name__}")


def _decode(hint: Any, raw: Any, records: list[PaymentRecord]) -> Any:
    if raw is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _decode(inner, raw, records)
    if origin in (tuple, list):
        item = typing.get_args(hint)[0]
        items = [_decode(item, entry, records) for entry in raw]
        return tuple(items) if origin is tuple else items
    if hint is bytes:
        return bytes.fromhex(raw)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(raw)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(raw, dict) and "$ref" in raw:
            return records[raw["$ref"]]
        values = {name: _decode(t, raw[name], records) for name, t in _fields(hint) if name in raw}
        return hint(**values)
    return raw
