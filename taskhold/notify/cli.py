"""``taskhold webhooks add|list|remove``: the operator's webhooks, kept in the database.

A running server picks a change up at its next round: no restart. Each delivery is an
operator-signed Nostr event carrying one log entry (``docs/webhooks.md`` tells a receiver how
to check it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from taskhold.settings import Settings
from taskhold.store import Store, create_engine, migrate

from .webhooks import add_webhook, list_webhooks, remove_webhook

__all__ = ["webhooks_app"]

webhooks_app = typer.Typer(no_args_is_help=True, help="Signed webhooks: add, list, remove.")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="where the database lives (default: settings)")
]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="default: settings")]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]

T = TypeVar("T")


def _with_store(
    data_dir: Path | None, database_url: str | None, use: Callable[[Store], Awaitable[T]]
) -> T:
    values: dict[str, Any] = {}
    if data_dir is not None:
        values["data_dir"] = data_dir
    if database_url is not None:
        values["database_url"] = database_url
    settings = Settings(**values)

    async def run() -> T:
        engine = create_engine(settings.resolved_database_url)
        try:
            await migrate(engine)
            store = Store(engine)
            return await use(store)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _show(hooks: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(hooks, indent=2))
        return
    console = Console()
    for hook in hooks:
        state = escape("[on]" if hook["enabled"] else "[off]")
        line = f"{hook['webhook_id']}  {escape(hook['url'])}  {state}"
        line += f"  delivered up to gseq {hook['delivered_gseq']}"
        if hook["last_error"]:
            line += f"  last error: {escape(hook['last_error'])}"
        console.print(line)


@webhooks_app.command("add")
def add_command(
    url: Annotated[str, typer.Argument(help="http(s) URL the log entries are POSTed to")],
    from_start: Annotated[
        bool, typer.Option("--from-start", help="deliver the whole log, from gseq 0")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: Json = False,
) -> None:
    """Register a webhook: it gets every log entry from the next one on (or from the start)."""
    try:
        hook = _with_store(
            data_dir,
            database_url,
            lambda store: add_webhook(store, url, now=int(time.time()), from_start=from_start),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="URL") from None
    _show([hook], as_json)


@webhooks_app.command("list")
def list_command(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, as_json: Json = False
) -> None:
    """The registered webhooks, with how far each got and its last error."""
    _show(_with_store(data_dir, database_url, list_webhooks), as_json)


@webhooks_app.command("remove")
def remove_command(
    webhook_id: Annotated[int, typer.Argument(help="the id `taskhold webhooks list` shows")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Stop calling a webhook."""
    if not _with_store(data_dir, database_url, lambda store: remove_webhook(store, webhook_id)):
        typer.echo(f"no webhook with id {webhook_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"webhook {webhook_id} removed")
