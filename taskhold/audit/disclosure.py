"""``taskhold disclosure``: does a disclosed payload match what the log committed to?

An arbiter (or anyone) handed a private task's details, or a sealed proof, in a dispute checks
it against the commitment in the operator's public log: the ``details_hash`` of the task's
``TaskCreated`` entry, or the ``proof_hash`` of one of its proof entries (a dispute may be
about a proof the worker replaced since). The entry is read from
relays and its signature checked like every entry the auditor reads; the payload is hashed
here (``commitments.disclosure_matches``), with no key and no writer code.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .checks import audit_log
from .commitments import disclosure_matches
from .entry import AuditKinds
from .fetch import FetchSettings, fetch_log
from .nip01 import Verdict, verify_event
from .nip19 import operator_hex

__all__ = ["DisclosureVerdict", "check_disclosure_in_log", "disclosure_command"]

Item = Literal["details", "proof"]

_COMMITTED_IN: Mapping[str, tuple[frozenset[str], str]] = {
    "details": (frozenset({"TaskCreated"}), "details_hash"),
    "proof": (frozenset({"ProofSubmitted"}), "proof_hash"),
}
"""Where each kind of item is committed: the entries that carry it and the field's name."""


@dataclass(frozen=True, slots=True)
class DisclosureVerdict:
    task: str
    item: str
    commitment: str | None
    """The committed hash found in the log; None when the log commits to none for the task."""
    entry_id: str | None
    matches: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "item": self.item,
            "commitment": self.commitment,
            "entry_id": self.entry_id,
            "matches": self.matches,
        }


def check_disclosure_in_log(
    entries: Iterable[Mapping[str, Any]],
    operators: Collection[str],
    task: str,
    item: str,
    payload: str,
) -> DisclosureVerdict:
    """The verdict on ``payload`` against the commitments to ``item`` for ``task`` in entries
    signed by one of ``operators`` (the log's key and the keys it was rotated to): the entry
    it matches, or else the latest commitment. An entry that fails its signature check is
    ignored."""
    ops, field = _COMMITTED_IN[item]
    found: tuple[str, str] | None = None
    for entry in entries:
        if entry.get("pubkey") not in operators or verify_event(dict(entry)) is not Verdict.OK:
            continue
        tags = {t[0]: t[1] for t in entry.get("tags", ()) if len(t) >= 2}
        if tags.get("task") != task or tags.get("op") not in ops:
            continue
        try:
            committed = json.loads(entry["content"])["event"].get(field)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if isinstance(committed, str):
            found = (committed, str(entry["id"]))
            if disclosure_matches(payload, committed):
                return DisclosureVerdict(task, item, committed, found[1], True)
    if found is None:
        return DisclosureVerdict(task, item, None, None, False)
    committed, entry_id = found
    return DisclosureVerdict(
        task, item, committed, entry_id, disclosure_matches(payload, committed)
    )


def disclosure_command(
    relay: Annotated[
        list[str], typer.Option("--relay", help="relay URL (ws:// or wss://); repeat for more")
    ],
    operator: Annotated[
        str, typer.Option("--operator", help="the operator's public key: npub1… or 64 hex")
    ],
    task: Annotated[str, typer.Option("--task", help="the task id")],
    payload_file: Annotated[
        Path,
        typer.Option(
            "--payload", help="file holding the disclosed payload exactly as sealed ('-': stdin)"
        ),
    ],
    item: Annotated[
        str,
        typer.Option("--item", help="details (the task's) or proof (any of its proofs')"),
    ] = "details",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds per relay request")] = 10.0,
    entry_kind: Annotated[int, typer.Option(help="the log entry kind")] = 3910,
) -> None:
    """Check a disclosed payload against the commitment in the operator's public log. Exit 0
    when it matches, 1 when it does not (or the log commits to none), 2 when no relay could
    be read."""
    if item not in _COMMITTED_IN:
        raise typer.BadParameter("details or proof", param_hint="--item")
    try:
        pubkey = operator_hex(operator)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--operator") from None
    raw = sys.stdin.buffer.read() if str(payload_file) == "-" else payload_file.read_bytes()
    kinds = AuditKinds(entry=entry_kind)
    fetched = asyncio.run(
        fetch_log(relay, pubkey, kinds=kinds, settings=FetchSettings(timeout_s=timeout))
    )
    if not fetched.readable:
        typer.echo("no relay could be read", err=True)
        raise typer.Exit(2)
    operators = audit_log(fetched.entries, pubkey, kinds=kinds).operator_keys or (pubkey,)
    payload = raw.decode("utf-8")
    verdict = check_disclosure_in_log(fetched.entries, operators, task, item, payload)
    if as_json:
        sys.stdout.write(json.dumps(verdict.to_json()) + "\n")
    elif verdict.commitment is None:
        typer.echo(f"the log commits to no {item} for task {task}")
    else:
        said = "matches" if verdict.matches else "does NOT match"
        typer.echo(f"the disclosed {item} {said} commitment {verdict.commitment}")
    raise typer.Exit(0 if verdict.matches else 1)
