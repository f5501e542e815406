"""The simulator's wallet and mining routes are served only when asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from support.cli import isolated_logging  # noqa: F401
from support.stacks import Stack, close_stack, open_stack, stack_settings
from typer.testing import CliRunner

from taskhold.cli import cli

pytestmark = pytest.mark.usefixtures("isolated_logging")

SIM_CALLS = [
    ("GET", "/v1/sim/wallets", None),
    ("POST", "/v1/sim/mine", {"blocks": 1}),
    ("POST", "/v1/sim/invoice", {"amount_msat": 1000}),
    ("POST", "/v1/sim/pay", {"payment_request": "lnbcrt1"}),
]


async def _answers(stack: Stack) -> list[int]:
    return [
        (await stack.http.request(method, path, json=body)).status_code
        for method, path, body in SIM_CALLS
    ]


async def test_a_default_app_does_not_serve_the_sim_routes(stack: Stack) -> None:
    assert not stack.settings.sim_routes_enabled
    assert await _answers(stack) == [404, 404, 404, 404]
    paths = (await stack.http.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/v1/sim")]


async def test_the_flag_serves_them(tmp_path: Path, database_url: str) -> None:
    stack = await open_stack(stack_settings(tmp_path, database_url, sim_routes_enabled=True))
    try:
        answers = await _answers(stack)
    finally:
        await close_stack(stack)
    assert answers[:3] == [200, 200, 200]
    assert answers[3] == 422  # served, and "lnbcrt1" is no invoice


@pytest.mark.parametrize(("flags", "served"), [([], False), (["--sim-routes"], True)])
def test_serve_mounts_them_only_with_sim_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], served: bool
) -> None:
    apps: list[FastAPI] = []

    async def record(self: uvicorn.Server, *args: Any) -> None:
        apps.append(self.config.app)

    monkeypatch.setattr(uvicorn.Server, "serve", record)
    monkeypatch.delenv("TASKHOLD_SIM_ROUTES_ENABLED", raising=False)
    result = CliRunner().invoke(
        cli, ["serve", "--data-dir", str(tmp_path / "data"), "--relay", "ws://127.0.0.1:9", *flags]
    )
    assert result.exit_code == 0, result.output
    (served_app,) = apps
    assert ("/v1/sim/pay" in served_app.openapi()["paths"]) is served


async def test_an_undecodable_invoice_is_a_422(tmp_path: Path, database_url: str) -> None:
    stack = await open_stack(stack_settings(tmp_path, database_url, sim_routes_enabled=True))
    try:
        response = await stack.http.post("/v1/sim/pay", json={"payment_request": "0"})
    finally:
        await close_stack(stack)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "bad_invoice"
