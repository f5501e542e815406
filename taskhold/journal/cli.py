"""``taskhold audit-log verify``: check the audit log's hash chain and its signed checkpoints.

Exit status 0 when everything checks out, 1 on any fault (a broken row, a checkpoint that does
not match), 2 when the audit log cannot be read at all.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from taskhold.settings import Settings
from taskhold.store.db import create_engine
from taskhold.store.models import OutboxRow

from .chain import ChainReport, verify_chain
from .checkpoints import CheckpointResult, operator_pubkeys, verify_checkpoints

__all__ = ["AuditVerdict", "audit_log_app", "verify_audit_log"]

audit_log_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")


@dataclass
class AuditVerdict:
    chain: ChainReport
    checkpoints: list[CheckpointResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chain.ok and all(result.ok for result in self.checkpoints)

    def lines(self) -> list[str]:
        head = self.chain.head
        out = [
            f"rows: {self.chain.rows}",
            "head: " + (f"seq {head.seq} hash {head.hash}" if head else "(empty)"),
        ]
        broken = self.chain.first_broken
        out.append(
            "chain: ok" if broken is None else f"chain: BROKEN at seq {broken.seq}: {broken.reason}"
        )
        for result in self.checkpoints:
            verdict = "ok" if result.ok else "FAULT"
            out.append(
                f"checkpoint {result.event_id[:16]} seq {result.seq}: {verdict}, {result.reason}"
            )
        out.append("verdict: " + ("ok" if self.ok else "FAULT"))
        return out


def _load_events(path: Path) -> list[Any]:
    text = path.read_text().strip()
    if text.startswith("["):
        events: list[Any] = json.loads(text)
        return events
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def verify_audit_log(
    database_url: str,
    *,
    checkpoint_events: list[Any] | None = None,
    operator_pubkeys_given: set[str] | None = None,
    checkpoint_kind: int = 30078,
) -> AuditVerdict:
    """The chain, then every checkpoint given or waiting in the local outbox."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            chain = await verify_chain(conn)
            events = list(checkpoint_events or [])
            try:
                rows = await conn.execute(
                    select(OutboxRow.raw).where(OutboxRow.kind == checkpoint_kind)
                )
                events += [raw for (raw,) in rows]
            except SQLAlchemyError:
                await conn.rollback()  # no outbox table: only the events given
            trusted = operator_pubkeys_given or await operator_pubkeys(conn)
            checkpoints = await verify_checkpoints(
                conn, events, trusted_pubkeys=trusted, kind=checkpoint_kind
            )
    finally:
        await engine.dispose()
    return AuditVerdict(chain=chain, checkpoints=checkpoints)


@audit_log_app.command()
def verify(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="taskhold's data directory")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="default: the settings' database")
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option("--checkpoints", help="published checkpoint events (JSON array or lines)"),
    ] = None,
    operator_pubkey: Annotated[
        list[str] | None,
        typer.Option(
            "--operator-pubkey", help="trust only these signers (default: the log's keys)"
        ),
    ] = None,
) -> None:
    """Recompute every row's hash and link, and check the signed checkpoints."""
    values: dict[str, Any] = {}
    if data_dir is not None:
        values["data_dir"] = data_dir
    if database_url is not None:
        values["database_url"] = database_url
    settings = Settings(**values)
    try:
        events = _load_events(checkpoints) if checkpoints is not None else None
        verdict = asyncio.run(
            verify_audit_log(
                settings.resolved_database_url,
                checkpoint_events=events,
                operator_pubkeys_given=set(operator_pubkey or []),
                checkpoint_kind=settings.kind_checkpoint,
            )
        )
    except (SQLAlchemyError, OSError, ValueError) as exc:
        typer.echo(f"error: cannot read the audit log: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    for line in verdict.lines():
        typer.echo(line)
    if not verdict.ok:
        raise typer.Exit(1)
