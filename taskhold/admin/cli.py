"""``taskhold admin``: the operator's console over the settings' database.

``pause`` / ``resume`` switch intake for every replica; ``status`` shows the switch; ``stuck``
lists escrows near their margin or with failing payouts (a table, or ``--json``);
``reconcile`` asks the running engines for one full pass and waits for one to finish it. Each
action is journaled with the actor ``admin:<os user>`` (``--actor`` names another).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError

from taskhold.journal.chain import admin_actor
from taskhold.settings import Settings, settings_from_flags
from taskhold.store import Store, create_engine, migrate

from .controls import ask_reconcile, intake_status, set_intake, wait_reconciled
from .stuck import DEFAULT_WITHIN_BLOCKS, StuckReport, find_stuck

__all__ = ["admin_app"]

admin_app = typer.Typer(
    no_args_is_help=True,
    help="The operator's console: pause/resume intake, stuck escrows, an engine pass.",
    rich_markup_mode=None,
)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="where the database and key files live")
]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="the database (default: the settings')")
]
Actor = Annotated[
    str | None, typer.Option("--actor", help="who acts, for the journal (default: the OS user)")
]

T = TypeVar("T")


def _run(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` on the settings' database (migrated first, as ``serve`` does); a database
    that cannot be reached is exit status 2 with the reason."""

    async def go() -> T:
        engine = create_engine(settings.resolved_database_url)
        try:
            await migrate(engine)
            return await work(Store(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        typer.echo(f"error: cannot reach the database: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None


@admin_app.command()
def pause(
    reason: Annotated[str | None, typer.Option("--reason", help="why, for the journal")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    actor: Actor = None,
) -> None:
    """Pause intake: create and fund get 503 intake_paused; funded tasks go on."""
    settings = settings_from_flags(data_dir=data_dir, database_url=database_url)
    change = _run(
        settings,
        lambda store: set_intake(store, paused=True, actor=admin_actor(actor), reason=reason),
    )
    typer.echo("intake paused" if change.changed else "intake was already paused")


@admin_app.command()
def resume(data_dir: DataDir = None, database_url: DatabaseUrl = None, actor: Actor = None) -> None:
    """Resume intake: create and fund are taken again."""
    settings = settings_from_flags(data_dir=data_dir, database_url=database_url)
    change = _run(settings, lambda store: set_intake(store, paused=False, actor=admin_actor(actor)))
    typer.echo("intake resumed" if change.changed else "intake was not paused")


@admin_app.command()
def status(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Whether intake is paused, since when and by whom."""
    switch = _run(settings_from_flags(data_dir=data_dir, database_url=database_url), intake_status)
    if switch is None or not switch.value:
        since = "" if switch is None else f" (by {switch.changed_by} at {switch.changed_at})"
        typer.echo(f"intake open{since}")
    else:
        typer.echo(f"intake paused by {switch.changed_by} at {switch.changed_at}")


@admin_app.command()
def stuck(
    within: Annotated[
        int,
        typer.Option("--within", min=0, help="blocks before a margin that count as near"),
    ] = DEFAULT_WITHIN_BLOCKS,
    height: Annotated[
        int | None,
        typer.Option("--height", min=0, help="block height (default: the engines' last seen)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Escrows near their guard margin, or whose payouts keep failing, with the reason."""
    settings = settings_from_flags(data_dir=data_dir, database_url=database_url)
    report = _run(
        settings,
        lambda store: find_stuck(store, settings, within_blocks=within, height=height),
    )
    if as_json:
        typer.echo(json.dumps(report.as_json()))
        return
    _print_table(report)


def _print_table(report: StuckReport) -> None:
    """Plain columns, never wrapped or cut: an operator copies task ids from here."""
    if report.height is None:
        typer.echo("no block height known yet (no engine ran): margins not checked")
    else:
        typer.echo(f"at height {report.height}, within {report.within_blocks} blocks")
    if not report.escrows:
        typer.echo("nothing stuck")
        return
    rows = [("task", "state", "reason", "blocks left", "detail")]
    for item in report.escrows:
        left = "" if item.blocks_left is None else str(item.blocks_left)
        rows.append((item.task_id, item.state, item.reason, left, item.detail))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[4]]))


@admin_app.command()
def reconcile(
    wait: Annotated[
        float,
        typer.Option("--wait", min=0, help="seconds to wait for an engine's pass (0: do not)"),
    ] = 30.0,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    actor: Actor = None,
) -> None:
    """Ask the running engines for one full pass (each picks it up at its next tick)."""
    settings = settings_from_flags(data_dir=data_dir, database_url=database_url)

    async def work(store: Store) -> tuple[int, bool]:
        ask = await ask_reconcile(store, actor=admin_actor(actor))
        done = wait > 0 and await wait_reconciled(store, ask, timeout_s=wait)
        return ask, done

    ask, done = _run(settings, work)
    if wait == 0:
        typer.echo(f"engine pass {ask} asked for")
    elif done:
        typer.echo(f"engine pass {ask} done")
    else:
        typer.echo(
            f"error: no engine finished pass {ask} within {wait:g} s (is taskhold serve running?)",
            err=True,
        )
        raise typer.Exit(1)
