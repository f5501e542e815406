"""Plain figures the engine fills and ``/metrics`` reads: no Prometheus object below the API.

:class:`Durations` is a cumulative histogram (Prometheus' shape: counts per upper bound, a sum
and a count), kept per stack in memory like ``EscrowContext.capacity_refusals``, so two stacks
in one process never mix their figures. Its labels are chosen by whoever observes: never a
task id, a key or anything secret.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["DEFAULT_BOUNDS_S", "Durations", "Series"]

DEFAULT_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the buckets, below ``+Inf``."""


@dataclass
class Series:
    """One histogram series: observations below each bound (not yet cumulative)."""

    buckets: list[int]
    sum_s: float = 0.0
    count: int = 0

    def cumulative(self) -> list[int]:
        total, out = 0, []
        for n in self.buckets:
            total += n
            out.append(total)
        return out


@dataclass
class Durations:
    """Durations by label values; ``observe`` is cheap enough for every request."""

    bounds_s: tuple[float, ...] = DEFAULT_BOUNDS_S
    series: dict[tuple[str, ...], Series] = field(default_factory=dict)

    def observe(self, seconds: float, *labels: str) -> None:
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = Series([0] * (len(self.bounds_s) + 1))
        found.buckets[bisect.bisect_left(self.bounds_s, seconds)] += 1
        found.sum_s += seconds
        found.count += 1
