"""What the benchmarks share: loading a sibling bench file, taskhold in process on the Lightning
simulator, and the tests' fresh database of
either kind (``tests/support/stacks.new_database``: a new SQLite file, or a PostgreSQL database
made with ``$TASKHOLD_TEST_PG_URL`` and dropped afterwards).

``bench/`` is a folder of scripts, not a package: a script run as ``python bench/X.py`` (or
loaded by ``bench/run.py``, which lives here too) has this folder first on ``sys.path``, so
``from benchkit import ...`` works both ways. The checkout the bench lives in comes first on
``sys.path`` too, before an installed ``taskhold``: a bench run in a git worktree measures that
worktree's taskhold, not the one ``pip install -e`` pointed at.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH.parent / "tests")]

import time  # noqa: E402

import httpx  # noqa: E402
from support.stacks import PG_ADMIN_URL, new_database  # noqa: E402

from taskhold.api.application import create_api  # noqa: E402
from taskhold.client import TaskholdClient  # noqa: E402
from taskhold.lightning.simworld import SimWorld  # noqa: E402
from taskhold.services import Services, build_services  # noqa: E402
from taskhold.settings import Settings  # noqa: E402

__all__ = ["BENCH", "PG_ADMIN_URL", "fund_one", "load_bench", "new_database", "on_simulator"]


def load_bench(file: str) -> ModuleType:
    """Import ``bench/<file>`` by path, with the repository root importable as for the tests."""
    if str(BENCH.parent) not in sys.path:
        sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location(f"bench_{Path(file).stem}", BENCH / file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load bench/{file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


async def on_simulator(settings: Settings) -> tuple[Services, SimWorld, httpx.AsyncClient]:
    """taskhold's services on a fresh simulator world, and an HTTP client to its API in process
    (the engine is not started: each bench drives it)."""
    world = SimWorld.create(hold_expiry_delta=settings.hold_expiry_delta)
    services = await build_services(settings, sim=world)
    transport = httpx.ASGITransport(app=create_api(services, run_engine=False))
    http = httpx.AsyncClient(transport=transport, base_url="http://taskhold.bench")
    return services, world, http


async def fund_one(
    services: Services, world: SimWorld, employer: TaskholdClient, amount_msat: int
) -> dict[str, object]:
    """A task created by ``employer``, due in a day, paid by the simulator's employer and seen
    FUNDED by the engine; its API view as created."""
    task = await employer.create_task(
        "bench", "", amount_msat, int(time.time()) + 86_400,
        acceptance={"required_fields": ["url"]},
    )  # fmt: skip
    funding = (await employer.request_funding(str(task["task_id"])))["funding"]
    await world.employer.send_payment(funding["payment_request"])
    await services.engine.reconcile()
    return task
