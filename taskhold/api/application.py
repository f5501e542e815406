"""The FastAPI application: routers, problem handlers, OpenAPI at ``/docs``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request

from taskhold import web
from taskhold.escrow.stats import Durations

from . import metrics, routes_reputation, routes_sim, routes_tasks
from .info import publish_info
from .jurisdiction import refuse_blocked_places
from .latency import RequestTiming
from .problems import install_problem_handlers
from .ratelimit import client_ip
from .schemas import install_openapi

if TYPE_CHECKING:
    from taskhold.services import Services

__all__ = ["create_api"]


async def throttle_reads(request: Request) -> None:
    """Every GET takes a token from its client's read bucket (writes have their own)."""
    limits = request.app.state.services.limits
    if limits is not None and request.method in ("GET", "HEAD"):
        limits.check_read_ip(client_ip(request))


def create_api(services: Services, *, run_engine: bool = True) -> FastAPI:
    """The API over ``services``; with ``run_engine`` the escrow engine and the outbox publisher
    run in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_engine:
            await services.engine.start()
            if services.publisher is not None:
                await services.publisher.start()
            if services.reputation is not None:
                await services.reputation.start()
            if services.checkpointer is not None:
                await services.checkpointer.start()
            if services.webhooks is not None:
                await services.webhooks.start()
            await publish_info(services)
        try:
            yield
        finally:
            if run_engine:
                if services.webhooks is not None:
                    await services.webhooks.stop()
                if services.checkpointer is not None:
                    await services.checkpointer.stop()
                if services.reputation is not None:
                    await services.reputation.stop()
                if services.publisher is not None:
                    await services.publisher.stop()
                await services.engine.stop()

    app = FastAPI(
        title="taskhold",
        summary="Non-custodial escrow for tasks on Lightning hold invoices",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(refuse_blocked_places), Depends(throttle_reads)],
    )
    app.state.services = services
    app.state.request_durations = durations = Durations()
    app.add_middleware(RequestTiming, durations=durations)
    install_problem_handlers(app)
    install_openapi(app)
    app.include_router(routes_tasks.router)
    app.include_router(routes_reputation.router)
    app.include_router(metrics.router)
    app.include_router(web.router)
    if services.sim is not None and services.settings.sim_routes_enabled:
        app.include_router(routes_sim.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
