"""The board's and explorer's pages as files: every page is served with a policy that runs only
taskhold's own scripts, the static route serves nothing outside its folder, and a server whose
bundles were never built says so in the page instead of showing an empty board."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from support.stacks import Stack

from taskhold import web
from taskhold.web import pages

PAGES = ["/", "/tasks/abc", "/reputation/" + "ab" * 32, "/audit"]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The pages' routes alone: they read nothing of the server's state."""
    app = FastAPI()
    app.include_router(web.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://taskhold.test") as client:
        yield client


async def test_the_api_serves_the_board_at_its_root(stack: Stack) -> None:
    response = await stack.http.get("/")
    assert response.status_code == 200
    assert 'id="board"' in response.text


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_runs_only_its_own_scripts(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/static/dist/' in response.text


@pytest.mark.parametrize(
    "path", ["/static/../pages.py", "/static/%2e%2e/pages.py", "/static/board.html.py",
             "/static/nothing.css", "/static/dist/../../__init__.py"],
)  # fmt: skip
async def test_the_static_route_serves_nothing_outside_its_folder(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 404
    assert "import" not in response.text


async def test_the_stylesheet_is_served_as_css(http: httpx.AsyncClient) -> None:
    response = await http.get("/static/taskhold.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


async def test_a_server_without_bundles_says_how_to_build_them(
    http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "BUNDLE_DIR", tmp_path / "never-built")
    response = await http.get("/")
    assert 'id="not-built"' in response.text
    assert "scripts/build-web" in response.text
    assert "taskhold task" in response.text  # and how to act without the board meanwhile


async def test_a_built_server_shows_no_such_notice(
    http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = tmp_path / "dist"
    built.mkdir()
    (built / "board.js").write_text("")
    monkeypatch.setattr(pages, "BUNDLE_DIR", built)
    assert 'id="not-built"' not in (await http.get("/")).text
