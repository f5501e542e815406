"""``taskhold keys init|status|rotate``: the key store's admin commands.

Each command records itself in the audit log (actor ``admin:<os user>``) together with the key
uses it caused. Nothing here prints a secret: not the PIN, not a key, not a sealed plaintext.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from taskhold.errors import Refusal
from taskhold.journal.chain import AuditLog, admin_actor
from taskhold.settings import Settings, settings_from_flags

from .errors import KeyStoreUnavailable

__all__ = ["keys_app", "record_admin_action"]

keys_app = typer.Typer(no_args_is_help=True, help="The key store: init, status, rotate.")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="where the database and key files live")
]
Keystore = Annotated[str | None, typer.Option("--keystore", help="file or pkcs11")]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="where the audit log is (default: settings)")
]


async def record_admin_action(
    settings: Settings, audit: AuditLog, action: str, subject: str, details: dict[str, Any]
) -> None:
    """Write the key uses ``audit`` noted, then the admin action, to the settings' database."""
    from taskhold.store import Store, create_engine, migrate

    engine = create_engine(settings.resolved_database_url)
    try:
        await migrate(engine)
        await audit.record(admin_actor(), action, subject, details, store=Store(engine))
    finally:
        await engine.dispose()


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@keys_app.command()
def init(
    data_dir: DataDir = None, keystore: Keystore = None, database_url: DatabaseUrl = None
) -> None:
    """Create the key store's objects if missing (a SoftHSM2 token in development). Idempotent."""
    from .admin import init_key_store

    settings = settings_from_flags(data_dir=data_dir, keystore=keystore, database_url=database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    audit = AuditLog()
    try:
        report = init_key_store(settings, audit, actor=admin_actor())
    except (KeyStoreUnavailable, ValueError) as exc:
        raise _fail(exc) from None
    if report.dev_token is not None:
        state = "created" if report.dev_token.created else "found"
        typer.echo(f"SoftHSM2 token {report.dev_token.label!r} {state} ({report.dev_token.conf})")
    typer.echo(f"key store: {settings.keystore}")
    typer.echo(
        "created: " + (", ".join(report.created) if report.created else "nothing (all present)")
    )
    typer.echo(f"operator pubkey: {report.operator_pubkey}")
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    asyncio.run(
        record_admin_action(settings, audit, "keys.init", settings.keystore, report.audit_details())
    )


@keys_app.command()
def status(
    data_dir: DataDir = None,
    keystore: Keystore = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """What the key store holds: labels, key types, protection attributes, sealed names."""
    from .admin import key_store_status

    settings = settings_from_flags(data_dir=data_dir, keystore=keystore)
    try:
        report = key_store_status(settings)
    except KeyStoreUnavailable as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for name, value in report.items():
        if isinstance(value, list):
            typer.echo(f"{name}:")
            for item in value:
                typer.echo(f"  {item}")
        else:
            typer.echo(f"{name}: {value}")


@keys_app.command()
def rotate(
    data_dir: DataDir = None, keystore: Keystore = None, database_url: DatabaseUrl = None
) -> None:
    """Replace the operator's Nostr key; the old one is kept as ``operator.previous``.

    A ``KeyRotated`` entry signed by the old key and naming the new one is written to the
    public log in the same step (the database must be reachable, or nothing is rotated).

    Stop the server first and start it again afterwards: a running server signs with the key it
    unsealed at start.
    """
    from taskhold.publiclog.rotation import rotate_operator

    settings = settings_from_flags(data_dir=data_dir, keystore=keystore, database_url=database_url)
    audit = AuditLog()
    try:
        old, new = asyncio.run(rotate_operator(settings, audit, actor=admin_actor()))
    except (KeyStoreUnavailable, Refusal, ValueError, OSError, SQLAlchemyError) as exc:
        raise _fail(exc) from None
    typer.echo(f"old operator pubkey: {old.pubkey_hex}")
    typer.echo(f"new operator pubkey: {new.pubkey_hex}")
    typer.echo("the KeyRotated entry is in the log; `taskhold serve` publishes it")
    details = {"old_pubkey": old.pubkey_hex, "new_pubkey": new.pubkey_hex}
    asyncio.run(record_admin_action(settings, audit, "keys.rotate", new.pubkey_hex, details))
    typer.echo("restart taskhold so it signs with the new key", err=True)
