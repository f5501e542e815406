"""The simulated network taskhold runs on by default: an escrow node and two wallets."""

from __future__ import annotations

from dataclasses import dataclass

from .sim import SimNode
from .sim_network import SimNetwork

__all__ = ["SimWorld"]


@dataclass
class SimWorld:
    network: SimNetwork
    escrow: SimNode
    employer: SimNode
    worker: SimNode

    @classmethod
    def create(cls, *, hold_expiry_delta: int = 12) -> SimWorld:
        network = SimNetwork(hold_expiry_delta=hold_expiry_delta)
        return cls(
            network=network,
            escrow=SimNode(network, "escrow", balance_msat=50_000_000_000),
            employer=SimNode(network, "employer", balance_msat=50_000_000_000),
            worker=SimNode(network, "worker", balance_msat=0),
        )

    def wallet(self, name: str) -> SimNode:
        return {"employer": self.employer, "worker": self.worker}[name]

    def nodes(self) -> dict[str, SimNode]:
        return {"escrow": self.escrow, "employer": self.employer, "worker": self.worker}
