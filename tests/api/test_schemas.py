"""``/openapi.json`` describes the bodies the API really takes and gives.

Every answer a flow through the API gets validates against the model its route declares (a
member added to a view without its model fails here), refusals are documented as problem+json,
and the signed-event model agrees with the envelope check on which events are well formed.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError
from support.stacks import Stack
from support.task_flows import funded, submitted

from taskhold.api import schemas
from taskhold.envelope import verify_signed_request
from taskhold.errors import Refusal, RefusalCode
from taskhold.nostr import NostrKeys


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    for template, operations in document["paths"].items():
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path) and method.lower() in operations:
            return {"template": template, **operations[method.lower()]}
    raise AssertionError(f"{method} {path} is not in /openapi.json")


def _model(response: dict[str, Any]) -> type[BaseModel]:
    (content,) = response["content"].values()
    name = content["schema"]["$ref"].rsplit("/", 1)[-1]
    model = getattr(schemas, name)
    assert issubclass(model, BaseModel)
    return model


class Recorder:
    """Every answer the stack's HTTP client receives, checked against /openapi.json."""

    def __init__(self, stack: Stack, document: dict[str, Any]) -> None:
        self.document = document
        self.answered: set[tuple[str, str, int]] = set()
        stack.http.event_hooks["response"].append(self.check)

    async def check(self, response: httpx.Response) -> None:
        request = response.request
        await response.aread()
        operation = _operation(self.document, request.method, request.url.path)
        declared = operation["responses"]
        status = str(response.status_code)
        assert status in declared, f"{operation['template']} answers {status}, undeclared"
        media = "application/problem+json" if response.status_code >= 400 else "application/json"
        assert response.headers["content-type"] == media
        assert list(declared[status]["content"]) == [media]
        try:
            _model(declared[status]).model_validate(response.json())
        except ValidationError as exc:
            raise AssertionError(f"{request.method} {request.url.path}: {exc}") from exc
        self.answered.add((request.method, operation["template"], response.status_code))


async def test_every_answer_of_a_flow_fits_its_declared_model(open_custom: Any) -> None:
    arbiter = NostrKeys.generate()
    stack: Stack = await open_custom(sim_routes_enabled=True, arbiters=[arbiter.pubkey_hex])
    recorder = Recorder(stack, (await stack.http.get("/openapi.json")).json())
    employer, worker, stranger = stack.client(), stack.client(), stack.client()
    task = await submitted(stack, employer, worker)
    task_id = task["task_id"]
    await worker.update_payout_invoice(
        task_id, await stack.world.worker.create_invoice(task["payout_msat"], expiry_seconds=86_400)
    )
    await employer.approve(task_id)
    await stack.settle_engine()
    assert (await employer.get_task(task_id))["state"] == "PAID"
    swap = await worker.report_swap(
        task_id, role="payout", swap_id="p1", swap_api="https://boltz.example", claim_txid="c1" * 32
    )
    assert swap["swaps"][0]["claim_txid"] == "c1" * 32
    await worker.review(task_id, 5, "prompt")
    disputed = await submitted(stack, employer, worker)
    await employer.open_dispute(disputed["task_id"], "six syllables")
    await stack.client(arbiter).resolve_dispute(disputed["task_id"], "employer", "too long")
    await stack.settle_engine()
    parting = (await submitted(stack, employer, worker))["task_id"]
    proposed = await worker.propose_agreement(parting, 0, "let us part")
    assert proposed["agreement"]["proposed_by"] == worker.pubkey_hex
    await worker.withdraw_agreement(parting)
    await employer.propose_agreement(parting, 0)
    await worker.accept_agreement(parting, 0)
    await stack.settle_engine()
    await employer.list_tasks()
    await employer.transitions(task_id)
    await employer.info()
    await employer.reputation(worker.pubkey_hex)
    await employer.receipts(task_id)
    await employer.reviews(task_id)
    applied = await funded(stack, employer, claim_mode="apply")
    await worker.apply(applied["task_id"], "me")
    await employer.assign(applied["task_id"], worker.pubkey_hex)
    await worker.unclaim(applied["task_id"])
    squatted = await funded(stack, employer, claim_timeout_s=1)
    await stranger.claim(squatted["task_id"])
    await asyncio.sleep(1.1)
    await employer.revoke(squatted["task_id"])
    milestones = [
        {"title": f"part {n}", "amount_msat": 20_000_000, "deadline_at": int(time.time()) + n * 600}
        for n in (1, 2)
    ]
    series = await employer.create_milestones(milestones, funding_mode="upfront")
    await employer.get_task(series["series"]["task_ids"][1])
    await employer.get_series(series["task_id"])
    for refused in (
        stranger.approve(task_id),
        stranger.get_task("0" * 64),
        stack.http.post("/v1/tasks", json={"request": {}}, headers={"Idempotency-Key": "k"}),
        stack.http.post("/v1/tasks", json={"nothing": 1}),
        stack.http.post("/v1/tasks", json={"request": _event(content='{"a": 1}')}),
    ):
        try:
            await refused
        except Exception as exc:  # the client raises its own error for a problem
            assert getattr(exc, "code", None) in set(RefusalCode), exc
    for method, path, body in [
        ("GET", "/v1/sim/wallets", None),
        ("POST", "/v1/sim/mine", {"blocks": 1}),
        ("POST", "/v1/sim/invoice", {"amount_msat": 1000}),
    ]:
        (await stack.http.request(method, path, json=body)).raise_for_status()
    invoice = await stack.world.worker.create_invoice(1000)
    await stack.http.post("/v1/sim/pay", json={"payment_request": invoice})

    answered = {(method, template) for method, template, status in recorder.answered}
    operations = {
        (method.upper(), template)
        for template, by_method in recorder.document["paths"].items()
        for method in by_method
    }
    not_in_this_flow = {
        ("POST", f"/v1/tasks/{{task_id}}/{op}")
        for op in ("reject", "cancel", "deposit", "deposit-payout", "refund-invoice")
    }
    assert operations - answered == not_in_this_flow
    statuses = {status for _, _, status in recorder.answered}
    assert {200, 201, 401, 404, 409, 422} <= statuses


async def test_the_openapi_document_declares_signed_events_and_problems(stack: Stack) -> None:
    document = (await stack.http.get("/openapi.json")).json()
    body = document["components"]["schemas"]["SignedWrite"]["properties"]["request"]
    assert body["title"] == "SignedEvent"
    assert body["required"] == ["id", "pubkey", "created_at", "kind", "tags", "content", "sig"]
    assert body["additionalProperties"] is False
    problem = document["components"]["schemas"]["Problem"]
    assert sorted(problem["properties"]) == ["code", "detail", "status", "title", "type"]
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "HTTPValidationError" not in json.dumps(responses), (method, template)
            ok = [status for status in responses if status.startswith("2")]
            assert ok and all("$ref" in json.dumps(responses[s]) for s in ok), (method, template)


def _event(**change: Any) -> dict[str, Any]:
    keys = NostrKeys.generate()
    return {**keys.sign_event(3912, "{}", [["op", "create"]], int(time.time())), **change}


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"id": "A" * 64},
        {"pubkey": "0" * 63},
        {"sig": "0" * 127},
        {"created_at": -1},
        {"created_at": 1.5},
        {"created_at": True},
        {"kind": 70_000},
        {"kind": "3912"},
        {"tags": [[]]},
        {"tags": [["op", 1]]},
        {"tags": "op"},
        {"tags": [["op", "a\nb"]]},
        {"content": {"a": 1}},
        {"content": "line\nbreak"},
        {"content": "tab\there"},
        {"extra": 1},
    ],
)
def test_the_signed_event_model_agrees_with_the_envelope_check(change: dict[str, Any]) -> None:
    event = _event(**change)
    try:
        schemas.SignedEvent.model_validate(event)
        described = True
    except ValidationError:
        described = False
    try:
        verify_signed_request(
            event, op="create", kinds=frozenset({3912}), task_id=None, now=int(time.time()),
            window_s=300,
        )  # fmt: skip
        accepted_shape = True
    except Refusal as exc:
        accepted_shape = exc.code is not RefusalCode.MALFORMED_EVENT
    assert described == accepted_shape
