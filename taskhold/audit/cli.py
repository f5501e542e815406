"""``taskhold audit``: fetch the operator's log from relays and check it independently."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from .checks import audit_log
from .entry import AuditKinds
from .fetch import FetchSettings, fetch_log
from .nip19 import operator_hex
from .report import exit_code, print_report, report_json
from .scores import fetch_reputation, receipt_findings, score_findings

__all__ = ["audit_command"]

_KINDS = "Event kinds (the operator's TASKHOLD_KIND_* settings)"


def audit_command(
    relay: Annotated[
        list[str], typer.Option("--relay", help="relay URL (ws:// or wss://); repeat for more")
    ],
    operator: Annotated[
        str, typer.Option("--operator", help="the operator's public key: npub1… or 64 hex")
    ],
    reputation: Annotated[
        str | None,
        typer.Option(
            "--reputation",
            help="the reputation key (npub1… or hex, from /v1/info): also recompute its scores",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="seconds to connect, and to answer each request")
    ] = 10.0,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            help="processes that verify signatures and read entries (default: one per core;"
            " a small log stays in one); the report does not depend on it",
        ),
    ] = None,
    entry_kind: Annotated[int, typer.Option(rich_help_panel=_KINDS)] = 3910,
    proof_kind: Annotated[int, typer.Option(rich_help_panel=_KINDS)] = 3911,
    request_kind: Annotated[int, typer.Option(rich_help_panel=_KINDS)] = 3912,
    listing_kind: Annotated[int, typer.Option(rich_help_panel=_KINDS)] = 30402,
    checkpoint_kind: Annotated[int, typer.Option(rich_help_panel=_KINDS)] = 30078,
) -> None:
    """Verify the operator's public log without taskhold's own code: every signature (on
    coincurve), the gseq chain (gaps, equivocation), each task's chain, embedded participant
    requests and every release's preimage; with --reputation, also the published scores and
    the review receipts, read from every key of the operator's rotation chain. Exit 0 when
    clean, 1 on any finding, 2 when no relay could be read."""
    try:
        pubkey = operator_hex(operator)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--operator") from None
    kinds = AuditKinds(entry_kind, proof_kind, request_kind, listing_kind, checkpoint_kind)
    fetched = asyncio.run(
        fetch_log(relay, pubkey, kinds=kinds, settings=FetchSettings(timeout_s=timeout))
    )
    result = None
    checked = 0
    if fetched.readable:
        result = audit_log(
            fetched.entries,
            pubkey,
            kinds=kinds,
            checkpoints=fetched.checkpoints,
            deletions=fetched.deletions,
            jobs=jobs or os.cpu_count() or 1,
        )
    if result is not None and reputation is not None:
        try:
            reputation_hex = operator_hex(reputation)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--reputation") from None
        published = asyncio.run(
            fetch_reputation(
                relay,
                result.operator_keys or [pubkey],
                reputation_hex,
                settings=FetchSettings(timeout_s=timeout),
            )
        )
        checked, score_problems = score_findings(
            fetched.entries,
            published.assertions,
            published.records,
            operator=pubkey,
            reputation=reputation_hex,
        )
        score_problems += receipt_findings(fetched.entries, published.receipts, operator=pubkey)
        result = dataclasses.replace(result, findings=result.findings + tuple(score_problems))
    if as_json:
        answer = report_json(pubkey, fetched, result)
        answer["scores_checked"] = checked if reputation is not None else None
        sys.stdout.write(json.dumps(answer) + "\n")
    else:
        console = Console(soft_wrap=True)
        if reputation is not None:
            console.print(f"{checked} published reputation score(s) recomputed from the log")
        print_report(console, pubkey, fetched, result)
    raise typer.Exit(int(exit_code(fetched, result)))
