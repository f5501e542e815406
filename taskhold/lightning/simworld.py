"""The simulated network taskhold runs on by default: an escrow node and two wallets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .sim import SimNode
from .sim_network import SimNetwork
from .sim_store import SimFile, restore, snapshot

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

    @classmethod
    def open(cls, path: Path, *, hold_expiry_delta: int = 12) -> SimWorld:
        """The world saved at ``path`` (a new one if there is none yet), saved there again after
        every change: what ``serve --lightning sim`` runs on, so a restart loses nothing."""
        world = cls.create(hold_expiry_delta=hold_expiry_delta)
        file = SimFile(path)
        saved = file.load()
        if saved is not None:
            restore(world.network, world.nodes(), saved)

        def save() -> None:
            file.save(snapshot(world.network, world.nodes()))

        world.network.on_change = save
        save()
        return world

    def wallet(self, name: str) -> SimNode:
        return {"employer": self.employer, "worker": self.worker}[name]

    def nodes(self) -> dict[str, SimNode]:
        return {"escrow": self.escrow, "employer": self.employer, "worker": self.worker}
