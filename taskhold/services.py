"""The composition root: every dependency is built here once and passed in. No globals."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from taskhold.actions import WriteContext
from taskhold.api.jurisdiction import GeoDatabaseError, Jurisdiction, open_jurisdiction
from taskhold.api.ratelimit import WriteLimits, write_limits
from taskhold.escrow import EscrowContext, EscrowEngine, FaultHook
from taskhold.escrow.crashpoints import crash_hook
from taskhold.journal.chain import AuditLog
from taskhold.keys import KeyStore
from taskhold.keys.audited import audited, close_key_store
from taskhold.keys.operator import load_operator_keys, load_previous_operator_keys
from taskhold.keys.signer import EventSigner, LocalSigner
from taskhold.keys.stores import open_key_store
from taskhold.lightning.base import LightningBackend, LightningError
from taskhold.lightning.pool import PoolBackend, PoolMember
from taskhold.lightning.simworld import SimWorld
from taskhold.moderation import KeyBlocks
from taskhold.nostr.embedded import EmbeddedRelay
from taskhold.nostr.relays import RelayPool
from taskhold.notify import WebhookDeliverer
from taskhold.notify.wiring import notifiers, notify_kinds, webhook_deliverer
from taskhold.publiclog.checkpoints import Checkpointer
from taskhold.publiclog.publisher import OutboxPublisher
from taskhold.publiclog.writer import LogKinds, LogWriter
from taskhold.reputation.service import ReputationService
from taskhold.reputation.wiring import build_reputation, operator_kinds, receipt_issuer
from taskhold.settings import Settings, settings_digest
from taskhold.store import Store, create_engine, migrate
from taskhold.store.placements import StorePlacements

if TYPE_CHECKING:
    from taskhold.lightning.ldk import LdkConfig

__all__ = ["SIM_STATE_FILE", "Services", "build_services", "ldk_config", "open_ldk_backend"]

SIM_STATE_FILE = "sim-network.json"
"""The simulator's invoices, HTLCs, payments and balances, in the data directory."""


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
    relay_pool: RelayPool | None = None
    publisher: OutboxPublisher | None = None
    """Drains the outbox to ``settings.relays``; None when no relay is configured."""
    embedded_relay: EmbeddedRelay | None = None
    audit: AuditLog | None = None
    reputation: ReputationService | None = None
    limits: WriteLimits | None = None
    checkpointer: Checkpointer | None = None
    webhooks: WebhookDeliverer | None = None
    """Delivers the log to the operator's registered webhooks (``taskhold webhooks add``)."""
    jurisdiction: Jurisdiction | None = None
    """The operator's blocked countries and ranges (451); None when nothing is blocked."""

    async def close(self) -> None:
        await self.engine.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        if self.reputation is not None:
            await self.reputation.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        if self.relay_pool is not None:
            await self.relay_pool.close()
        if self.embedded_relay is not None:
            await self.embedded_relay.stop()
        await self.lightning.close()
        if self.audit is not None:
            await self.audit.aclose()
        close_key_store(self.keys)
        await self.store.close()
        if self.jurisdiction is not None:
            self.jurisdiction.close()


async def _with_node_limits(settings: Settings, backend: LightningBackend) -> Settings:
    """The guardian's margin must start from the node's own auto-cancel (lnd's
    ``holdexpirydelta``, read from the running node: 18 on lnd v0.21, 12 before; LDK's fixed
    fail-back buffer of 39), and no hold may ask for more than the node accepts. Assumed too
    small, the node cancels a held invoice before taskhold acts, and a release racing that
    cancel pays the worker from the operator's own money. A node that does not say refuses the
    start; in a pool every member must say, and the widest margin of them all is taken."""
    from taskhold.lightning.ldk import LdkBackend
    from taskhold.lightning.lnd import LndBackend

    if isinstance(backend, PoolBackend):
        for member in backend.members:
            settings = await _with_node_limits(settings, member.backend)
        return settings
    if not isinstance(backend, LndBackend | LdkBackend):
        return settings
    try:
        node_delta = await backend.hold_expiry_delta()
    except LightningError as exc:
        raise SystemExit(
            f"cannot read the node's own cancel margin (lnd's invoices.holdexpirydelta) ({exc});"
            " the guardian's margin depends on it, so taskhold does not start without it"
        ) from exc
    update: dict[str, int] = {}
    if node_delta > settings.hold_expiry_delta:
        update["hold_expiry_delta"] = node_delta
    if isinstance(backend, LdkBackend):
        node_min = await backend.min_cltv_expiry_delta()
        if node_min > settings.min_cltv_expiry_delta:
            update["min_cltv_expiry_delta"] = node_min
        node_max = await backend.max_cltv_expiry_delta()
        if node_max < settings.max_cltv_expiry_delta:
            update["max_cltv_expiry_delta"] = node_max
    return settings.model_copy(update=update) if update else settings


def ldk_config(settings: Settings, keys: KeyStore | None) -> LdkConfig:
    """The embedded LDK node's configuration: the devnet's LDK escrow when the devnet
    connection file names one, otherwise the operator's node in ``ldk_storage_dir`` with its
    seed derived by ``keys``."""
    from taskhold.keys.file import FileKeyStore
    from taskhold.keys.node_seed import ldk_node_seed
    from taskhold.lightning.ldk import LdkConfig

    if settings.lnd_connection_file is not None:
        document = json.loads(settings.lnd_connection_file.read_text())
        entry = document.get("ldk_escrow")
        if not isinstance(entry, dict):
            raise SystemExit(
                f"lightning=ldk: {settings.lnd_connection_file} has no LDK escrow; start the"
                " devnet with `taskhold devnet up --escrow ldk`"
            )
        return LdkConfig(
            storage_dir=Path(entry["storage_dir"]),
            seed=ldk_node_seed(FileKeyStore(Path(entry["key_path"]))),
            rpc_host=entry["rpc_host"],
            rpc_port=int(entry["rpc_port"]),
            rpc_user=entry["rpc_user"],
            rpc_password=entry["rpc_pass"],
            listen=entry.get("listen"),
            trusted_peers_no_reserve=tuple(entry.get("trusted_peers", ())),
        )
    if keys is None:
        raise SystemExit("lightning=ldk: the node's seed needs the key store")
    host, _, port = settings.ldk_bitcoind_rpc.rpartition(":")
    password = settings.ldk_bitcoind_password
    return LdkConfig(
        storage_dir=settings.ldk_storage_dir or settings.data_dir / "ldk",
        seed=ldk_node_seed(keys),
        rpc_host=host,
        rpc_port=int(port),
        rpc_user=settings.ldk_bitcoind_user,
        rpc_password=password.get_secret_value() if password else "",
        listen=settings.ldk_listen,
    )


async def open_ldk_backend(settings: Settings, keys: KeyStore) -> LightningBackend:
    """Build and start the embedded LDK node (:func:`ldk_config`)."""
    from taskhold.lightning.ldk import LdkBackend
    from taskhold.lightning.ldk_module import LdkModuleMissing

    try:
        return await LdkBackend.open(ldk_config(settings, keys), module_dir=settings.ldk_dir)
    except LdkModuleMissing as exc:
        raise SystemExit(f"lightning=ldk: {exc}") from None


def _crash_hook(spec: str) -> FaultHook:
    """``TASKHOLD_CRASH_AT``, checked before anything is opened: a misspelt point is refused."""
    try:
        return crash_hook(spec)
    except ValueError as exc:
        raise SystemExit(f"TASKHOLD_CRASH_AT: {exc}") from None


def _lightning(
    settings: Settings, sim: SimWorld | None, placements: StorePlacements
) -> LightningBackend:
    if sim is not None:
        return sim.escrow
    if settings.lnd_pool:
        members = [
            PoolMember(name, _lnd_backend(settings, path, name))
            for path, name in _pool_entries(settings)
        ]
        return PoolBackend(members, placements)
    if settings.lnd_connection_file is None:
        raise SystemExit(
            "lightning=lnd needs TASKHOLD_LND_CONNECTION_FILE (written by `taskhold devnet up`)"
        )
    return _lnd_backend(settings, settings.lnd_connection_file, settings.lnd_node)


def _pool_entries(settings: Settings) -> list[tuple[Path, str]]:
    """``lnd_pool``'s ``[FILE#]NODE`` entries as (connection file, node name)."""
    entries = []
    for entry in settings.lnd_pool:
        file, _, node = entry.rpartition("#")
        path = Path(file) if file else settings.lnd_connection_file
        if path is None:
            raise SystemExit(
                f"lnd_pool entry {entry!r} names no connection file, and"
                " TASKHOLD_LND_CONNECTION_FILE is not set"
            )
        entries.append((path, node))
    return entries


def _lnd_backend(settings: Settings, path: Path, node: str) -> LightningBackend:
    from taskhold.lightning.lnd import LndBackend

    return LndBackend.from_connection_file(
        path,
        node=node,
        max_connections=settings.lnd_max_connections,
        invoice_poll_seconds=settings.lnd_invoice_poll_s,
        admin_macaroon=settings.lnd_admin_macaroon,
    )


async def build_services(
    settings: Settings,
    *,
    sim: SimWorld | None = None,
    lightning: LightningBackend | None = None,
    fault_hook: FaultHook | None = None,
    embedded_relay: bool = False,
) -> Services:
    """Open the database (migrating it), the key store, the Lightning backend and the relays.

    With ``embedded_relay`` and no relay in ``settings.relays``, the in-process relay is started
    in the data directory and becomes the one relay (``services.settings.relays``).
    """
    if fault_hook is None and settings.crash_at is not None:
        fault_hook = _crash_hook(settings.crash_at)
    jurisdiction = _jurisdiction(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    relay = None
    if embedded_relay and not settings.relays:
        relay = EmbeddedRelay(settings.data_dir, port=settings.embedded_relay_port)
        settings = settings.model_copy(update={"relays": [await relay.start()]})
    if lightning is None and sim is None and settings.lightning == "sim":
        sim = SimWorld.open(
            settings.data_dir / SIM_STATE_FILE, hold_expiry_delta=settings.hold_expiry_delta
        )
    audit = AuditLog()  # bound to the store once it exists; the signer reports to it first
    keys = audited(open_key_store(settings), audit)
    if lightning is None and sim is None and settings.lightning == "ldk":
        lightning = await open_ldk_backend(settings, keys)
    placements = StorePlacements()
    backend = lightning or _lightning(settings, sim, placements)
    settings = await _with_node_limits(settings, backend)
    engine = create_engine(settings.resolved_database_url)
    await migrate(engine)
    operator_keys = load_operator_keys(keys, settings.data_dir, audit=audit)
    previous_keys = load_previous_operator_keys(keys, settings.data_dir)
    rotated_from = (previous_keys,) if previous_keys is not None else ()
    signer = LocalSigner(
        operator_keys,
        allowed_kinds=frozenset(
            {settings.kind_log_entry, settings.kind_listing, settings.kind_checkpoint}
        )
        | operator_kinds(settings)
        | notify_kinds(settings),
        observer=audit.signature_observer(),
    )
    log = LogWriter(
        signer,
        kinds=LogKinds.of(settings),
        clock=time.time,
        lock=not settings.resolved_database_url.startswith("sqlite"),
        hooks=[receipt_issuer(settings, signer), *notifiers(settings, signer)],
    )
    store = Store(engine, log=log)
    audit.bind(store)
    placements.bind(store, settings.data_dir)
    await audit.record_config_start(
        settings_digest(settings),
        {
            "keystore": settings.keystore,
            "lightning": settings.lightning,
            "database": store.dialect,
            "operator_pubkey": signer.get_public_key(),
        },
    )
    ctx = EscrowContext(
        store=store,
        lightning=backend,
        keys=keys,
        settings=settings,
        audit=audit,
        operator_keys=operator_keys,
        previous_operator_keys=rotated_from,
    )
    if fault_hook is not None:
        ctx.fault_hook = fault_hook
    escrow_engine = EscrowEngine(ctx)
    reputation = build_reputation(settings, store, signer)
    limits = write_limits(settings)
    pool, publisher = await _publishing(settings, store)
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
            gates=(limits, reputation.writes),
            tx_gates=(KeyBlocks(),),
            reputation=reputation.writes,
            operator_keys=operator_keys,
            previous_operator_keys=rotated_from,
        ),
        sim=sim,
        relay_pool=pool,
        publisher=publisher,
        embedded_relay=relay,
        audit=audit,
        reputation=reputation.service,
        limits=limits,
        checkpointer=Checkpointer(
            store,
            signer,
            kind=settings.kind_checkpoint,
            interval_s=settings.checkpoint_interval_s,
        ),
        webhooks=webhook_deliverer(settings, store, signer),
        jurisdiction=jurisdiction,
    )


def _jurisdiction(settings: Settings) -> Jurisdiction | None:
    """Opened before anything else: a bad database file stops the start with one sentence."""
    try:
        return open_jurisdiction(settings)
    except GeoDatabaseError as exc:
        raise SystemExit(f"TASKHOLD_GEOIP_DATABASE: {exc}") from None


async def _publishing(
    settings: Settings, store: Store
) -> tuple[RelayPool | None, OutboxPublisher | None]:
    """The relay pool and the outbox publisher; none without relays (the outbox then waits)."""
    if not settings.relays:
        return None, None
    pool = RelayPool()
    await pool.connect(settings.relays)
    publisher = OutboxPublisher(
        store,
        pool,
        settings.relays,
        time.time,
        poll_interval_s=settings.publish_interval_s,
        listing_kind=settings.kind_listing,
    )
    return pool, publisher
