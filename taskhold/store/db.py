"""Database engines and schema migrations, for SQLite (embedded default) and PostgreSQL.

SQLite write transactions start with ``BEGIN IMMEDIATE`` so concurrent writers queue on the
database lock instead of failing late with a stale snapshot; PostgreSQL writers lock the task row.
The SQLite connection runs its statements on the event loop's thread and only the ones that can
wait (``BEGIN``, ``COMMIT``) on aiosqlite's (see ``.sqlite_driver``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .sqlite_driver import sqlite_connector

__all__ = ["create_engine", "is_sqlite", "migrate", "sqlite_url"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url`` with taskhold's connection settings applied."""
    if is_sqlite(url):
        path = make_url(url).database or ":memory:"
        engine = create_async_engine(
            url, echo=echo, async_creator=sqlite_connector(path, timeout_s=60)
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = _alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
