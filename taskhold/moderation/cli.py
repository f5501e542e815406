"""``taskhold moderate block|unblock|delist|relist``: the operator's moderation from the shell.

Each command writes to the database every replica reads (a running server refuses a blocked
key from its next write on), journals itself (actor ``admin:<os user>``) and signs the new
moderation list with the operator key; ``taskhold serve`` publishes it from the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from taskhold.errors import Refusal
from taskhold.journal.chain import AuditLog, admin_actor
from taskhold.keys.audited import audited, close_key_store
from taskhold.keys.errors import KeyStoreUnavailable
from taskhold.keys.operator import load_operator_keys
from taskhold.keys.signer import LocalSigner
from taskhold.keys.stores import open_key_store
from taskhold.publiclog.writer import LogKinds, LogWriter
from taskhold.settings import Settings, settings_from_flags
from taskhold.store import Store, create_engine, migrate

from .moderator import Moderator

__all__ = ["moderate_app"]

moderate_app = typer.Typer(
    no_args_is_help=True, help="Block or unblock a participant key; delist or relist a task."
)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="where the database and key files live")
]
Keystore = Annotated[str | None, typer.Option("--keystore", help="file or pkcs11")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="default: settings")]
Reason = Annotated[str, typer.Option("--reason", help="why; published with the list")]


async def _moderate(settings: Settings, act: Callable[[Moderator, str], Awaitable[Any]]) -> Any:
    """Open the database and the operator key, run ``act``, journal the key uses."""
    actor = admin_actor()
    engine = create_engine(settings.resolved_database_url)
    audit = AuditLog()
    raw = open_key_store(settings)
    try:
        await migrate(engine)
        keys = audited(raw, audit, actor=actor)
        operator = load_operator_keys(keys, settings.data_dir, audit=audit)
        signer = LocalSigner(
            operator,
            allowed_kinds=frozenset({settings.kind_listing, settings.kind_checkpoint}),
            observer=audit.signature_observer(actor),
        )
        log = LogWriter(
            signer,
            kinds=LogKinds.of(settings),
            clock=time.time,
            lock=not settings.resolved_database_url.startswith("sqlite"),
        )
        store = Store(engine, log=log)
        audit.bind(store)
        moderator = Moderator(store, signer, audit, kind=settings.kind_checkpoint)
        result = await act(moderator, actor)
    except BaseException:
        with contextlib.suppress(Exception):  # the refusal is what the operator must see
            await audit.aclose()  # a refused change's key uses are journaled all the same
        raise
    else:
        await audit.aclose()  # the flush begun at bind() included: no connection left out
        return result
    finally:
        close_key_store(raw)
        await engine.dispose()


def _run(
    data_dir: Path | None,
    keystore: str | None,
    database_url: str | None,
    act: Callable[[Moderator, str], Awaitable[dict[str, Any]]],
) -> None:
    settings = settings_from_flags(data_dir=data_dir, keystore=keystore, database_url=database_url)
    try:
        signed = asyncio.run(_moderate(settings, act))
    except (Refusal, KeyStoreUnavailable, OSError, SQLAlchemyError) as exc:
        typer.echo(f"error: {getattr(exc, 'detail', exc)}", err=True)
        raise typer.Exit(1) from None
    listed = json.loads(signed["content"])
    typer.echo(
        f"moderation list {signed['id']}: {len(listed['blocked_keys'])} blocked keys,"
        f" {len(listed['delisted_tasks'])} delisted tasks; `taskhold serve` publishes it"
    )


@moderate_app.command()
def block(
    pubkey: Annotated[str, typer.Argument(help="the participant's hex public key")],
    reason: Reason,
    data_dir: DataDir = None,
    keystore: Keystore = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Refuse the key's signed writes (403 blocked_key); its funded tasks still pay out."""
    _run(data_dir, keystore, database_url, lambda m, actor: m.block(pubkey, reason, actor=actor))


@moderate_app.command()
def unblock(
    pubkey: Annotated[str, typer.Argument(help="the participant's hex public key")],
    data_dir: DataDir = None,
    keystore: Keystore = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Take the key's writes again."""
    _run(data_dir, keystore, database_url, lambda m, actor: m.unblock(pubkey, actor=actor))


@moderate_app.command()
def delist(
    task_id: Annotated[str, typer.Argument(help="the task's id")],
    reason: Reason,
    data_dir: DataDir = None,
    keystore: Keystore = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Take the task off the public board; its escrow continues."""
    _run(data_dir, keystore, database_url, lambda m, actor: m.delist(task_id, reason, actor=actor))


@moderate_app.command()
def relist(
    task_id: Annotated[str, typer.Argument(help="the task's id")],
    data_dir: DataDir = None,
    keystore: Keystore = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Put a delisted task back on the board."""
    _run(data_dir, keystore, database_url, lambda m, actor: m.relist(task_id, actor=actor))
