"""The composition root: every dependency is built here once and passed in. No globals."""

from __future__ import annotations

import time
from dataclasses import dataclass

from taskhold.actions import WriteContext
from taskhold.escrow import EscrowContext, EscrowEngine, FaultHook
from taskhold.keys import FileKeyStore, KeyStore
from taskhold.keys.signer import EventSigner, LocalSigner, load_or_create_key_file
from taskhold.lightning.base import LightningBackend
from taskhold.lightning.simworld import SimWorld
from taskhold.settings import Settings
from taskhold.store import Store, create_engine, migrate
from taskhold.store.log import LogKinds, LogWriter

__all__ = ["Services", "build_services"]


@dataclass
class Services:
    settings: Settings
    store: Store
    lightning: LightningBackend
    keys: KeyStore
    signer: EventSigner
    engine: EscrowEngine
    writes: WriteContext
    sim: SimWorld | None

    async def close(self) -> None:
        await self.engine.stop()
        await self.lightning.close()
        await self.store.close()


def _lightning(settings: Settings, sim: SimWorld | None) -> LightningBackend:
    if sim is not None:
        return sim.escrow
    from taskhold.lightning.lnd import LndBackend

    if settings.lnd_connection_file is None:
        raise SystemExit(
            "lightning=lnd needs TASKHOLD_LND_CONNECTION_FILE (written by `taskhold devnet up`)"
        )
    return LndBackend.from_connection_file(settings.lnd_connection_file, node=settings.lnd_node)


async def build_services(
    settings: Settings,
    *,
    sim: SimWorld | None = None,
    lightning: LightningBackend | None = None,
    fault_hook: FaultHook | None = None,
) -> Services:
    """Open the database (migrating it), the key store and the Lightning backend."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if lightning is None and sim is None and settings.lightning == "sim":
        sim = SimWorld.create(hold_expiry_delta=settings.hold_expiry_delta)
    backend = lightning or _lightning(settings, sim)
    engine = create_engine(settings.resolved_database_url)
    await migrate(engine)
    keys = FileKeyStore(settings.data_dir / "keys" / "preimage.key")
    signer = LocalSigner(
        load_or_create_key_file(settings.data_dir / "keys" / "operator.key"),
        allowed_kinds=frozenset(
            {settings.kind_log_entry, settings.kind_listing, settings.kind_checkpoint}
        ),
    )
    log = LogWriter(
        signer,
        kinds=LogKinds(
            entry=settings.kind_log_entry,
            listing=settings.kind_listing,
            checkpoint=settings.kind_checkpoint,
        ),
        clock=time.time,
        lock=not settings.resolved_database_url.startswith("sqlite"),
    )
    store = Store(engine, log=log)
    ctx = EscrowContext(store=store, lightning=backend, keys=keys, settings=settings)
    if fault_hook is not None:
        ctx.fault_hook = fault_hook
    escrow_engine = EscrowEngine(ctx)
    return Services(
        settings=settings,
        store=store,
        lightning=backend,
        keys=keys,
        signer=signer,
        engine=escrow_engine,
        writes=WriteContext(
            escrow=ctx,
            engine=escrow_engine,
            request_kind=settings.kind_request,
            proof_kind=settings.kind_proof,
        ),
        sim=sim,
    )
