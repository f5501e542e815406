"""Rotating the operator key hands the public log from one key to the next: the key store's
rotation and the ``KeyRotated`` entry that announces it happen together or not at all."""

from __future__ import annotations

import time

from taskhold.journal.chain import AuditLog
from taskhold.keys.audited import audited, close_key_store
from taskhold.keys.operator import restore_operator_key, rotate_operator_key
from taskhold.keys.signer import LocalSigner
from taskhold.keys.stores import open_key_store
from taskhold.nostr import NostrKeys
from taskhold.settings import Settings
from taskhold.store import Store, create_engine, migrate
from taskhold.tasks import SYSTEM_ACTOR

from .writer import record_rotation

__all__ = ["rotate_operator"]


async def rotate_operator(
    settings: Settings, audit: AuditLog | None = None, *, actor: str = SYSTEM_ACTOR
) -> tuple[NostrKeys, NostrKeys]:
    """``rotate_operator_key`` on the configured store and its ``KeyRotated`` entry in the
    public log (signed by the old key, queued for the next ``serve`` to publish), in one
    database transaction; returns ``(old, new)``.

    The database is opened first, so a rotation never happens without its entry: when the
    entry cannot be written or committed the old key is put back. Stop the server first.
    """
    engine = create_engine(settings.resolved_database_url)
    try:
        await migrate(engine)
        store = Store(engine)
        raw = open_key_store(settings)
        try:
            keystore = audited(raw, audit, actor=actor) if audit is not None else raw
            rotated: tuple[NostrKeys, NostrKeys] | None = None
            try:
                async with store.transaction() as tx:
                    rotated = rotate_operator_key(keystore, settings.data_dir)
                    old, new = rotated
                    signer = LocalSigner(
                        old,
                        allowed_kinds=frozenset({settings.kind_log_entry}),
                        observer=audit.signature_observer(actor) if audit is not None else None,
                    )
                    await record_rotation(
                        tx.session,
                        signer,
                        new.pubkey_hex,
                        kind=settings.kind_log_entry,
                        clock=time.time,
                        lock=store.dialect == "postgresql",
                    )
            except BaseException:
                if rotated is not None:
                    restore_operator_key(keystore, settings.data_dir, rotated[0])
                raise
            assert rotated is not None
            return rotated
        finally:
            close_key_store(raw)
    finally:
        await engine.dispose()
