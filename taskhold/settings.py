"""taskhold's configuration: environment variables ``TASKHOLD_*``, an optional env file, defaults.

With nothing configured taskhold runs on embedded defaults: a SQLite file and a key file in the
data directory, and the deterministic Lightning simulator.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "Settings",
    "default_data_dir",
    "settings_digest",
    "settings_from_flags",
    "swap_api_problem",
]


_URL_PASSWORD = re.compile(r"(://[^/:@]*:)[^@/]*@")


def settings_from_flags(**flags: object) -> Settings:
    """The settings an operator's command runs with: the flags given (``None``: not given)
    over ``TASKHOLD_*`` variables over the defaults."""
    return Settings(**{name: value for name, value in flags.items() if value is not None})  # type: ignore[arg-type]


def settings_digest(settings: Settings) -> str:
    """sha256 over every setting except secrets: recorded in the audit log at each start."""
    values = settings.model_dump(mode="json", exclude={"pkcs11_pin"})
    if values.get("database_url"):
        values["database_url"] = _URL_PASSWORD.sub(r"\1***@", values["database_url"])
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


MAX_SWAP_API_CHARS = 200


def swap_api_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a Boltz API base URL, or None.

    https with a host, or http only on loopback (a devnet swap server beside the nodes): a
    swap API named in the public log or offered to workers must not send a client's swap
    requests in the clear over a network. No credentials, query or fragment: the URL is
    public and names an endpoint, nothing else.
    """
    if not url or len(url) > MAX_SWAP_API_CHARS or not url.isprintable() or " " in url:
        return f"a swap API URL is 1 to {MAX_SWAP_API_CHARS} printable characters, no spaces"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "the swap API is not a URL"
    if not host or parts.username is not None or parts.password is not None:
        return "a swap API URL needs a host and carries no credentials"
    if parts.query or parts.fragment:
        return "a swap API URL carries no query or fragment"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _is_loopback(host):
        return None
    return "a swap API URL must be https (http only on loopback)"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_data_dir() -> Path:
    return Path.home() / ".taskhold"


class Settings(BaseSettings):
    """Every knob, with the default a first-time user should get."""

    model_config = SettingsConfigDict(env_prefix="TASKHOLD_", env_file=None, extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    """SQLAlchemy async URL; default ``sqlite+aiosqlite:///<data_dir>/taskhold.sqlite3``."""
    host: str = "127.0.0.1"
    port: int = 8350

    lightning: Literal["sim", "lnd", "ldk"] = "sim"
    lnd_connection_file: Path | None = None
    """JSON written by ``taskhold devnet up``: REST URL, TLS cert and macaroon path per node."""
    lnd_node: str = "escrow"
    lnd_admin_macaroon: bool = False
    """``TASKHOLD_LND_ADMIN_MACAROON=1``: talk to the escrow node(s) with the connection file's
    ``admin_macaroon_path`` instead of its ``macaroon_path``, the least-privilege macaroon
    ``taskhold devnet up`` bakes (``docs/lnd-macaroon.md``). An operator's explicit choice."""
    lnd_pool: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Several escrow nodes working as one (``taskhold.lightning.pool``): entries
    ``[FILE#]NODE``, a node of an lnd connection file (``lnd_connection_file`` when no FILE
    is given), comma-separated in the environment. The first is the primary. Empty: the one
    node ``lnd_node``."""
    lnd_max_connections: int = Field(default=32, ge=2)
    """HTTP connections to lnd for the calls taskhold waits on (settle, cancel, lookups,
    payments). Invoice subscriptions have their own pool, so they can never hold these up.
    Must exceed ``max_concurrent_payouts``: each payment followed keeps one."""
    lnd_invoice_poll_s: float = Field(default=1.0, gt=0)
    """How often lnd's pending invoices are read: its one all-invoices stream does not report
    a hold invoice being paid (ACCEPTED) or cancelled, so a poll does."""
    ldk_dir: Path | None = None
    """``TASKHOLD_LDK_DIR``: where ``scripts/build-ldk`` put LDK Node's Python module."""
    ldk_storage_dir: Path | None = None
    """The embedded LDK node's storage; default ``<data_dir>/ldk``. Its seed is derived by the
    key store, so this directory plus the key store is the whole node."""
    ldk_bitcoind_rpc: str = "127.0.0.1:8332"
    """``host:port`` of the bitcoind JSON-RPC the LDK node follows the chain through."""
    ldk_bitcoind_user: str = ""
    ldk_bitcoind_password: SecretStr | None = None
    ldk_listen: str | None = None
    """``host:port`` the LDK node accepts peers on; unset, it only dials out."""
    sim_routes_enabled: bool = False
    """Serve the simulator's wallet and mining routes (``/v1/sim/*``): demos and tests only,
    since anyone reaching them can pay, invoice and mine on the simulated network."""
    keystore: Literal["file", "pkcs11"] = "file"
    """Where the preimage key lives: a key file in the data dir, or a PKCS#11 token (an HSM)."""
    pkcs11_module: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    """The HSM vendor's PKCS#11 library; the default is Debian's SoftHSM2 (development only)."""
    pkcs11_token_label: str = "taskhold"
    """Tokens are found by label: slot ids change between restarts."""
    pkcs11_pin: SecretStr | None = None
    """User PIN (``TASKHOLD_PKCS11_PIN``); or ``pkcs11_pin_file``. Never logged."""
    pkcs11_pin_file: Path | None = None
    """A file holding the user PIN; default ``<data_dir>/keys/pkcs11.pin`` if it exists."""

    request_window_s: int = 300
    """How far a signed request's ``created_at`` may be from the server's clock."""
    max_request_bytes: int = 24_000
    """Content size of a signed request. The log entry embeds the request (and, for a create,
    its fields again), and relays refuse events over 64 KiB, so requests stay well below."""

    fee_ppm: int = 10_000
    """Operator fee in parts per million of the task amount, declared in every task."""
    fee_base_msat: int = 0
    min_amount_msat: int = 10_000
    max_amount_msat: int = 10_000_000_000

    default_review_window_s: int = 6 * 3600
    default_dispute_window_s: int = 12 * 3600
    deadline_policy: str = "refund_unless_verified"

    block_time_s: int = 600
    cltv_safety_factor: float = 1.25
    max_cltv_expiry_delta: int = 432
    """About three days of blocks: longer holds tie up liquidity on every hop (DESIGN 4)."""
    min_cltv_expiry_delta: int = 40
    hold_expiry_delta: int = 12
    """lnd's ``invoices.holdexpirydelta``: the node cancels this many blocks before expiry."""
    guardian_margin_blocks: int = 6
    """taskhold acts this many blocks before the node's own auto-cancel would."""
    invoice_expiry_s: int = 3600
    max_task_duration_s: int = Field(default=30 * 86_400, ge=0)
    """Longest task (deadline plus review and dispute windows) taken when it needs more than
    one hold: its hold is renewed round after round (``taskhold.escrow.renewal``). Longer
    tasks are refused with ``task_too_long``; 0 turns renewal off (one hold, ``hold_too_long``)."""
    renewal_lead_blocks: int = Field(default=240, ge=1)
    """A hold with this many blocks or fewer left opens the renewal of a task that still needs
    time past it. Above ``hold_reserve_blocks``, so the employer can pay it before the guardian
    decides anything."""
    max_open_invoices_per_key: int = Field(default=5, ge=1)
    """Unpaid invoices one key may have open at once (tasks awaiting funding plus open
    deposits); a further ``fund`` or ``deposit`` is refused with ``too_many_open_invoices``."""
    max_key_share: float = Field(default=0.25, gt=0, le=1)
    """The largest fraction of the escrow node's incoming HTLC slots, and of its inbound
    liquidity, that the tasks of one employer key may hold (awaiting payment or held). Published
    in the terms: it bounds what one key can lock up (``taskhold.escrow.admission``)."""
    capacity_retry_after_s: int = Field(default=60, ge=1)
    """``Retry-After`` of an ``insufficient_capacity`` refusal."""
    intake_paused_retry_after_s: int = Field(default=300, ge=1)
    """``Retry-After`` of an ``intake_paused`` refusal (``taskhold admin pause``)."""
    liquidity_hook: str | None = None
    """A command (split like a shell would, run without one) the engine runs when an escrow
    node runs low (``taskhold.escrow.liquidity_hook``): an LSP order or a channel open. None:
    no hook."""
    liquidity_low_inbound_msat: int = Field(default=0, ge=0)
    """A node with less inbound room than this is low (0: only slots and waiting payouts)."""
    liquidity_low_slots: int = Field(default=10, ge=0)
    """A node with fewer free incoming HTLC slots than this is low."""
    liquidity_check_s: float = Field(default=30.0, gt=0)
    """How often the nodes' figures are read for the hook."""
    liquidity_hook_interval_s: float = Field(default=600.0, ge=0)
    """The hook runs again for one node and direction only after this long."""

    payout_fee_ppm: int = 5_000
    payout_min_fee_msat: int = 10_000
    """A payout's routing fee may reach ``max(payout_min_fee_msat, payout_fee_ppm)`` of the
    payout, but never the operator fee of its task: the operator never pays more than it earns."""
    deposit_payout_max_fee_msat: int = 0
    """Routing fee a forfeited deposit's payout may cost. The operator earns nothing on a
    deposit, so by default it pays no fee for it: the beneficiary's invoice must be reachable
    without one (a direct channel, or a zero-fee route)."""
    payout_cltv_reserve_blocks: int = 144
    """Time lock (blocks) every hold keeps for the payout at its very end: the most a payout
    invoice's route and final CLTV may need. An lnd invoice asks 80, plus 3 of padding."""
    payout_cltv_margin_blocks: int = 6
    """Blocks between the latest expiry a payout's HTLC may have and the guardian's deadline on
    the HTLC that funds it, so the payout is resolved before the hold must be decided."""
    payout_timeout_s: int = 60
    payout_max_attempts: int = 3
    payout_min_validity_s: int = 600
    """A worker's payout invoice must stay valid at least this long when submitted."""
    max_concurrent_payouts: int = Field(default=8, ge=1)
    """Payments (releases, forfeited deposits) the engine follows at once; more wait their
    turn. The guardian, timers and refunds never wait for them."""

    arbiters: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hex pubkeys allowed to resolve disputes."""
    rejection_policy: Literal["release_unless_ruled", "arbiter"] = "release_unless_ruled"
    """What a rejected submission nobody disputed ends in, declared in every task:
    ``release_unless_ruled`` releases it unless an arbiter ruled for the employer;
    ``arbiter`` lets the rejection stand (a refund) unless the worker disputes it in time, and
    needs ``arbiters``. Without arbiters every task releases (see ``/v1/info``)."""

    kind_log_entry: int = 3910
    kind_proof: int = 3911
    kind_request: int = 3912
    kind_listing: int = 30402
    kind_checkpoint: int = 30078
    relays: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Relay URLs the public log goes to; empty means the embedded relay."""
    embedded_relay_port: int | None = None
    """Port of the embedded relay (loopback) when ``relays`` is empty; a free one by default."""
    publish_interval_s: float = 0.5
    """How often the outbox publisher looks for events to send when it has nothing to do."""

    crash_at: str | None = None
    """Crash testing only: ``<point>[:<nth>]`` kills the process with SIGKILL the nth time (1 by
    default) the escrow reaches this crash point, e.g. ``after_payout``, to prove a restart
    converges. The points are listed in ``taskhold.escrow.crashpoints``."""

    checkpoint_interval_s: float = 60.0
    """How often the heads of the public log and the audit log are checkpointed (kind 30078)."""

    engine_tick_s: float = 1.0
    engine_lease_s: float = Field(default=30.0, gt=0)
    """How long a replica's claim on one task's money (a payment job, a guard or refund step)
    lasts without renewal; it is renewed every third of it while the work runs. A replica that
    dies is taken over after this long (``docs/replicas.md``)."""
    reconcile_interval_s: float = 15.0

    # Reputation (taskhold/reputation/) ---------------------------------------------------------
    kind_receipt: int = 3913
    """Operator-signed review receipt, one per party of a PAID or REFUNDED task."""
    kind_review_record: int = 3914
    """Operator-signed record of an accepted review, numbered by ``rseq``."""
    kind_reputation: int = 30382
    """NIP-85 trusted assertion (``d`` = subject pubkey), signed by the reputation key."""
    reputation_interval_s: float = 1.0
    """How often the indexer reads new log entries while the server runs."""
    reputation_max_staleness_s: float = 1.0
    """A policy decision re-reads the log first when the indexer is older than this."""
    review_window_good_score: int = 600
    """An employer scoring at least this gets ``review_window_good_pct`` of the default window."""
    review_window_good_pct: int = 50
    review_window_top_score: int = 800
    review_window_top_pct: int = 25
    review_window_min_s: int = 3600
    """The policy never shrinks a default review window below this."""
    pow_max_bits: int = 0
    """NIP-13 difficulty asked of a pubkey with no record (score 0); 0 turns the policy off."""
    pow_free_score: int = 500
    """From this score on no proof of work is asked; below it difficulty falls linearly."""
    deposit_pct: int = 10
    """A stranger may lock a deposit instead of proof of work: this percentage of the task's
    amount at score 0, falling linearly to nothing at ``pow_free_score``."""
    deposit_min_msat: int = 10_000
    deposit_max_msat: int = 100_000_000
    rate_limit_pubkey_per_s: float = 2.0
    """Signed writes per second per pubkey (token bucket); 0 turns the limit off."""
    rate_limit_pubkey_burst: int = 30
    rate_limit_ip_per_s: float = 20.0
    """Writes per second per client IP (token bucket); 0 turns the limit off."""
    rate_limit_ip_burst: int = 200
    rate_limit_read_ip_per_s: float = 50.0
    """Reads (GET) per second per client IP (token bucket); 0 turns the limit off."""
    rate_limit_read_ip_burst: int = 500
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses of reverse proxies whose ``X-Forwarded-For`` names the client (what the rate
    limits count). Empty: forwarded headers are ignored and the peer address counts."""
    blocked_countries: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """ISO 3166-1 alpha-2 codes (``DE,KP``) of countries whose clients are answered 451
    (``taskhold.api.jurisdiction``), by the ``geoip_database``; comma-separated in the
    environment. Published in the terms (``/v1/info``, the info event)."""
    blocked_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """CIDR ranges (``203.0.113.0/24,2001:db8::/32``) whose clients are answered 451; a bare
    address is its own range. Published in the terms too."""
    geoip_database: Path | None = None
    """A MaxMind DB file (GeoLite2-Country or -City, ``.mmdb``) that places client addresses
    in countries; needed by ``blocked_countries``, opened once at start."""
    deposit_max_open_per_task: int = 10
    """Deposits that may wait for a claim on one task: each is a free invoice, log entry and
    return, so a stranger cannot make a claim drag thousands of them along."""
    deposit_max_per_task: int = 100
    """Deposits one task takes in its life: each one stays in the task's record."""
    refused_proofs_max_per_task: int = 10
    """Refused proofs recorded per task (only its claimed worker sends them); past it only a
    proof that passes the acceptance spec is taken."""
    refused_proof_max_bytes: int = 4_000
    """A failing proof is recorded (with its signed request, so the verdict stays auditable)
    only up to this content size; a larger one is answered with its problems, not stored."""
    default_claim_timeout_s: int = Field(default=6 * 3600, ge=1)
    """Time from a claim to its first proof when a create gives none, after which the employer
    may revoke the claim; never more than half the time left to the task's deadline."""
    applications_max_per_task: int = Field(default=100, ge=1)
    """Applications one task in claim mode ``apply`` takes: each is a log entry and stays in
    the task's record, so a stranger with many keys cannot bloat it."""
    milestones_max: int = Field(default=10, ge=1)
    """Milestones one create takes: each is a task with its own hold invoice and log chain."""

    # On-chain fallback (issue #14) ---------------------------------------------------------------
    swap_api_url: str | None = None
    """The Boltz API v2 base URL this operator offers workers for an on-chain payout by reverse
    swap when the Lightning payout cannot reach them; None offers no fallback. Shown in
    ``/v1/info`` as ``swap_api``; https, or http on loopback only."""

    # Notifications (taskhold/notify/) ----------------------------------------------------------
    notifications_enabled: bool = True
    """Send whoever a task waits on (fund, claim, approve, renew, answer a dispute …) a NIP-17
    private message from the operator key: task id, action and deadline, nothing private."""
    kind_gift_wrap: int = 1059
    """NIP-59 gift wrap: what each notification is published as (``p`` = its recipient)."""
    kind_private_message: int = 14
    """NIP-17 chat message: the rumor inside a notification's gift wrap."""
    kind_webhook_delivery: int = 3915
    """Operator-signed envelope of one log entry POSTed to a registered webhook (never sent
    to relays): the receiver checks it like any Nostr event (``docs/webhooks.md``)."""
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    """A webhook's whole answer (connect, send, reply) must come within this, or it is retried."""
    webhook_max_backoff_s: float = Field(default=300.0, gt=0)
    """Retries of a failing webhook back off 1 s, 2 s, 4 s … up to this."""
    webhook_interval_s: float = Field(default=1.0, gt=0)
    """How often the webhook worker looks for new log entries when it has nothing to do."""

    @field_validator("swap_api_url")
    @classmethod
    def _swap_api_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # an empty TASKHOLD_SWAP_API_URL offers no fallback, like leaving it out
        problem = swap_api_problem(value)
        if problem is not None:
            raise ValueError(f"swap_api_url: {problem}")
        return value

    @field_validator("ldk_bitcoind_rpc", "ldk_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port")
        return value

    @field_validator("lnd_pool")
    @classmethod
    def _pool_entries(cls, value: list[str]) -> list[str]:
        names = [entry.rpartition("#")[2] for entry in value]
        if any(not name for name in names):
            raise ValueError("an lnd_pool entry is [FILE#]NODE and names a node")
        if len(set(value)) != len(value):
            raise ValueError("lnd_pool names a node twice")
        return value

    @field_validator(
        "arbiters",
        "relays",
        "trusted_proxies",
        "lnd_pool",
        "blocked_countries",
        "blocked_networks",
        mode="before",
    )
    @classmethod
    def _split_arbiters(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("blocked_countries")
    @classmethod
    def _country_codes(cls, value: list[str]) -> list[str]:
        codes = [code.upper() for code in value]
        wrong = [code for code in codes if not re.fullmatch("[A-Z]{2}", code)]
        if wrong:
            raise ValueError(
                f"blocked_countries takes ISO 3166-1 alpha-2 codes such as DE, not {wrong}"
            )
        return sorted(set(codes))

    @field_validator("blocked_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        networks = []
        for entry in value:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"blocked_networks: {entry!r} is not a CIDR range") from None
        return [str(network) for network in networks]

    @model_validator(mode="after")
    def _countries_need_a_database(self) -> Settings:
        if self.blocked_countries and self.geoip_database is None:
            raise ValueError(
                "blocked_countries needs geoip_database (TASKHOLD_GEOIP_DATABASE, a GeoLite2-"
                "Country .mmdb file): without one no client could be placed in a country"
            )
        return self

    @model_validator(mode="after")
    def _a_pool_of_lnd_nodes(self) -> Settings:
        if self.lnd_pool and self.lightning != "lnd":
            raise ValueError(
                f"lnd_pool names lnd escrow nodes; it needs lightning=lnd, not {self.lightning}"
            )
        return self

    @model_validator(mode="after")
    def _renewal_before_the_guard(self) -> Settings:
        if self.max_task_duration_s and not (
            self.hold_reserve_blocks < self.renewal_lead_blocks < self.max_cltv_expiry_delta
        ):
            raise ValueError(
                f"renewal_lead_blocks must lie between hold_reserve_blocks"
                f" ({self.hold_reserve_blocks}) and max_cltv_expiry_delta"
                f" ({self.max_cltv_expiry_delta}): a renewal opens before the guardian acts"
            )
        return self

    @model_validator(mode="after")
    def _arbiters_for_the_rejection_policy(self) -> Settings:
        if self.rejection_policy == "arbiter" and not self.arbiters:
            raise ValueError(
                "rejection_policy 'arbiter' needs at least one arbiter (TASKHOLD_ARBITERS):"
                " without one nobody could rule on a rejection"
            )
        return self

    @model_validator(mode="after")
    def _nip17_kinds(self) -> Settings:
        if (self.kind_gift_wrap, self.kind_private_message) != (1059, 14):
            raise ValueError(
                "kind_gift_wrap and kind_private_message are fixed by NIP-17 (1059 and 14):"
                " clients open notifications by these kinds"
            )
        return self

    @model_validator(mode="after")
    def _kinds_distinct(self) -> Settings:
        by_kind: dict[int, list[str]] = {}
        for name in type(self).model_fields:
            if name.startswith("kind_"):
                by_kind.setdefault(getattr(self, name), []).append(name)
        shared = [names for names in by_kind.values() if len(names) > 1]
        if shared:
            raise ValueError(
                "every kind_* setting needs its own kind, or readers (and the log's auditor)"
                " would take one event for another: " + "; ".join(" = ".join(n) for n in shared)
            )
        return self

    @model_validator(mode="after")
    def _room_beside_payouts(self) -> Settings:
        if self.lnd_max_connections <= self.max_concurrent_payouts:
            raise ValueError(
                "lnd_max_connections must exceed max_concurrent_payouts, or the payments "
                "followed would take every connection a settle or cancel needs"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'taskhold.sqlite3'}"

    @property
    def guard_blocks(self) -> int:
        """Blocks before HTLC expiry at which the guardian must have acted."""
        return self.hold_expiry_delta + self.guardian_margin_blocks

    @property
    def hold_reserve_blocks(self) -> int:
        """Blocks a hold keeps beyond the task's windows: the guard margin, and the time lock a
        payout released at the last moment may still need."""
        return self.guard_blocks + self.payout_cltv_margin_blocks + self.payout_cltv_reserve_blocks
