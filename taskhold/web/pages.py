"""Routes that serve the board and the explorer: HTML shells, the stylesheet and the bundles.

A page's shell names one bundle. When the bundles were never built (a checkout without
``scripts/build-web``) the shell says so in its body instead of failing silently. Every page is sent
with a content security policy that runs only taskhold's own scripts: task titles and proofs are
written by strangers, and the policy is the second wall behind rendering them as text.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

__all__ = ["BUNDLE_DIR", "STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
BUNDLE_DIR = STATIC_DIR / "dist"
"""Where scripts/build-web writes the bundles (not in git)."""

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Connections to any relay are allowed (the explorer reads the log where the user points it);
scripts and styles only from this origin; no inline script, no framing."""

_TYPES = {".js": "text/javascript", ".map": "application/json", ".css": "text/css",
          ".txt": "text/plain"}  # fmt: skip

router = APIRouter(include_in_schema=False)


def _page(shell: str, bundle: str) -> HTMLResponse:
    html = (STATIC_DIR / shell).read_text(encoding="utf-8")
    if not (BUNDLE_DIR / f"{bundle}.js").is_file():
        html = html.replace(
            "<!--bundle-->",
            '<p class="notice" id="not-built">This page\'s script is not built on this server:'
            " run <code>scripts/build-web</code> in taskhold's checkout and restart"
            " <code>taskhold serve</code>. Meanwhile the <code>taskhold task</code> command does"
            " everything the board does.</p>",
        )
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/")
async def board() -> HTMLResponse:
    """Open tasks."""
    return _page("board.html", "board")


@router.get("/tasks/{task_id}")
async def task_page(task_id: str) -> HTMLResponse:
    """One task and its timeline (the script reads the id from the address)."""
    return _page("board.html", "board")


@router.get("/reputation/{pubkey}")
async def reputation_page(pubkey: str) -> HTMLResponse:
    """One key's reputation."""
    return _page("board.html", "board")


@router.get("/audit")
async def explorer() -> HTMLResponse:
    """The audit explorer."""
    return _page("explorer.html", "explorer")


@router.get("/static/{name:path}")
async def static_file(name: str) -> Response:
    """A stylesheet or bundle from :data:`STATIC_DIR`; nothing outside it, nothing else."""
    path = (STATIC_DIR / name).resolve()
    kind = _TYPES.get(path.suffix)
    if kind is None or not path.is_file() or not path.is_relative_to(STATIC_DIR):
        return Response(status_code=404)
    return FileResponse(path, media_type=kind, headers={"X-Content-Type-Options": "nosniff"})
