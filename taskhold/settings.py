"""taskhold's configuration: environment variables ``TASKHOLD_*``, an optional env file, defaults.

With nothing configured taskhold runs on embedded defaults: a SQLite file and a key file in the
data directory, and the deterministic Lightning simulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "default_data_dir"]


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

    lightning: Literal["sim", "lnd"] = "sim"
    lnd_connection_file: Path | None = None
    """JSON written by ``taskhold devnet up``: REST URL, TLS cert and macaroon path per node."""
    lnd_node: str = "escrow"
    keystore: Literal["file"] = "file"

    request_window_s: int = 300
    """How far a signed request's ``created_at`` may be from the server's clock."""
    max_request_bytes: int = 64_000

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

    payout_fee_ppm: int = 5_000
    payout_min_fee_msat: int = 10_000
    payout_timeout_s: int = 60
    payout_max_attempts: int = 3
    payout_min_validity_s: int = 600
    """A worker's payout invoice must stay valid at least this long when submitted."""

    arbiters: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hex pubkeys allowed to resolve disputes."""

    kind_log_entry: int = 3910
    kind_proof: int = 3911
    kind_request: int = 3912
    kind_listing: int = 30402
    kind_checkpoint: int = 30078
    relays: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Relay URLs the public log goes to; empty means the embedded relay."""

    engine_tick_s: float = 1.0
    reconcile_interval_s: float = 15.0

    @field_validator("arbiters", "relays", mode="before")
    @classmethod
    def _split_arbiters(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'taskhold.sqlite3'}"

    @property
    def guard_blocks(self) -> int:
        """Blocks before HTLC expiry at which the guardian must have acted."""
        return self.hold_expiry_delta + self.guardian_margin_blocks
