"""The baseline for bench/write_throughput.py: a bare FastAPI endpoint that accepts the same
body as taskhold's create route and does nothing with it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Header
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    request: dict[str, Any]


@app.post("/v1/tasks", status_code=201)
async def create(
    body: Body, key: str | None = Header(default=None, alias="Idempotency-Key")
) -> dict[str, Any]:
    return {"task_id": body.request.get("id"), "state": "DRAFT"}
