"""Storage: SQLAlchemy models, migrations and the transaction-scoped repository."""

from .db import create_engine, migrate, sqlite_url
from .repo import HoldCommitments, Store, StoredResponse, Tx, WriteConflict, open_transaction

__all__ = [
    "HoldCommitments",
    "Store",
    "StoredResponse",
    "Tx",
    "WriteConflict",
    "create_engine",
    "migrate",
    "open_transaction",
    "sqlite_url",
]
