"""The audit's verdict for people (a rich report) and for machines (one JSON object)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from .checks import AuditResult
from .fetch import FetchResult

__all__ = ["ExitCode", "exit_code", "print_report", "report_json"]


class ExitCode(IntEnum):
    CLEAN = 0
    FINDINGS = 1
    NO_RELAY = 2


def exit_code(fetched: FetchResult, result: AuditResult | None) -> ExitCode:
    if result is None or not fetched.readable:
        return ExitCode.NO_RELAY
    return ExitCode.CLEAN if result.clean else ExitCode.FINDINGS


_STATUS = {ExitCode.CLEAN: "clean", ExitCode.FINDINGS: "findings", ExitCode.NO_RELAY: "no_relay"}


def report_json(operator: str, fetched: FetchResult, result: AuditResult | None) -> dict[str, Any]:
    return {
        "status": _STATUS[exit_code(fetched, result)],
        "operator": operator,
        "relays": [relay.to_json() for relay in fetched.relays],
        "summary": result.summary.to_json() if result else None,
        "payout_proven": result is not None and result.summary.payout_proven,
        "findings": [finding.to_json() for finding in result.findings] if result else [],
    }


def print_report(
    console: Console, operator: str, fetched: FetchResult, result: AuditResult | None
) -> None:
    console.print(f"[bold]taskhold audit[/bold] of operator {operator}", soft_wrap=True)
    relays = Table("relay", "read", "entries", "highest gseq", "note", title="Relays")
    for relay in fetched.relays:
        note = relay.error or "; ".join(relay.notices)
        read = "[green]yes[/green]" if relay.ok else "[red]no[/red]"
        highest = "" if relay.highest_gseq is None else str(relay.highest_gseq)
        relays.add_row(relay.url, read, str(relay.entries), highest, note)
    console.print(relays)
    if result is None or not fetched.readable:
        console.print("[bold red]No relay could be read to the end: nothing was audited.[/]")
        return

    summary = result.summary
    head = "none" if summary.head_gseq is None else str(summary.head_gseq)
    console.print(
        f"{summary.entries} entries over {summary.tasks} tasks, head gseq {head}"
        + ("" if summary.checkpoint_gseq is None else f", checkpoint {summary.checkpoint_gseq}")
        + f" ({summary.events_received} events received)"
    )
    console.print(
        f"payouts proven by their payee's signed hash and preimage: {summary.payouts_proven}"
        f" of {summary.payouts}"
    )
    if summary.tasks_by_final_op:
        finals = Table("last entry of the task", "tasks", title="Tasks by last entry")
        for op, count in sorted(summary.tasks_by_final_op.items()):
            finals.add_row(op, str(count))
        console.print(finals)
    if result.clean:
        if summary.entries == 0:
            console.print("[bold yellow]No log entry of this operator was found.[/]")
        console.print("[bold green]Clean:[/] every check passed.")
        return
    findings = Table("kind", "where", "detail", title="Findings")
    findings.add_column("event ids", overflow="fold", min_width=16)
    for finding in result.findings:
        findings.add_row(
            f"[red]{finding.kind.value}[/]",
            finding.location.describe(),
            finding.detail,
            "\n".join(finding.event_ids),
        )
    console.print(findings)
    console.print(f"[bold red]{len(result.findings)} finding(s).[/]")
