"""Storage: SQLAlchemy models, migrations and the transaction-scoped repository."""

from .db import create_engine, migrate, sqlite_url
from .repo import Store, StoredResponse, Tx, WriteConflict

__all__ = [
    "Store",
    "StoredResponse",
    "Tx",
    "WriteConflict",
    "create_engine",
    "migrate",
    "sqlite_url",
]
