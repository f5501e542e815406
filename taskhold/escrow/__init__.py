"""The escrow engine: hold invoices, releases, refunds, the guardian, reconciliation."""

from .context import EscrowContext, FaultHook
from .engine import EscrowEngine

__all__ = ["EscrowContext", "EscrowEngine", "FaultHook"]
