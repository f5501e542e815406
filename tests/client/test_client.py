"""TaskholdClient signs every write, retries with the same event and key, and maps problems."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.envelope import verify_signed_request
from taskhold.nostr import KIND_PROOF, KIND_REQUEST, NostrKeys, verify_event
from taskhold.nostr.confidential import open_sealed

BASE = "http://taskhold.test"
NOW = 1_760_000_000
TASK_ID = "3f1c9e8a-5b7d-4c2e-9a10-0d6b2f4e8c11"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records requests and answers from a script."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def ok(body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"task_id": TASK_ID})


def make_client(recorder: Recorder, keys: NostrKeys | None = None) -> TaskholdClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return TaskholdClient(
        BASE + "/", keys or NostrKeys.generate(), http=http, retry_delay_s=0, clock=lambda: NOW
    )


async def test_create_task_sends_a_signed_request_without_task_tag() -> None:
    keys = NostrKeys.generate()
    recorder = Recorder(ok({"task_id": TASK_ID, "state": "DRAFT"}))
    async with make_client(recorder, keys) as client:
        task = await client.create_task(
            "Translate", "FR → EN, 300 words", 50_000, NOW + 86_400, acceptance={"type": "manual"}
        )

    assert task == {"task_id": TASK_ID, "state": "DRAFT"}
    (request,) = recorder.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/v1/tasks")
    event = recorder.bodies()[0]["request"]
    assert verify_event(event)
    assert event["pubkey"] == keys.pubkey_hex
    key = request.headers["Idempotency-Key"]
    assert (event["kind"], event["created_at"], event["tags"]) == (
        KIND_REQUEST,
        NOW,
        [["op", "create"], ["key", key]],
    )
    assert event["content"] == (
        '{"title":"Translate","description":"FR → EN, 300 words","amount_msat":50000,'
        f'"deadline_at":{NOW + 86_400},"acceptance":{{"type":"manual"}}}}'
    )
    assert request.headers["Idempotency-Key"]
    signed = verify_signed_request(
        event, op="create", kinds=frozenset({KIND_REQUEST}), task_id=None, now=NOW, window_s=60
    )
    assert signed.content["amount_msat"] == 50_000


@pytest.mark.parametrize(
    ("call", "path", "op", "content", "kind"),
    [
        (lambda c: c.request_funding(TASK_ID), "funding", "fund", {}, KIND_REQUEST),
        (lambda c: c.claim(TASK_ID), "claim", "claim", {}, KIND_REQUEST),
        (
            lambda c: c.submit_proof(TASK_ID, {"url": "https://x"}, "lnbcrt1", head="ab" * 32),
            "proof",
            "proof",
            {"proof": {"url": "https://x"}, "payout_invoice": "lnbcrt1"},
            KIND_PROOF,
        ),
        (lambda c: c.approve(TASK_ID), "approve", "approve", {}, KIND_REQUEST),
        (lambda c: c.reject(TASK_ID, "blurry"), "reject", "reject", {"reason": "blurry"}, 3912),
        (lambda c: c.open_dispute(TASK_ID, "x"), "dispute", "dispute", {"reason": "x"}, 3912),
        (
            lambda c: c.resolve_dispute(TASK_ID, "worker", "done"),
            "resolve",
            "resolve",
            {"winner": "worker", "note": "done"},
            KIND_REQUEST,
        ),
        (lambda c: c.cancel(TASK_ID), "cancel", "cancel", {"reason": ""}, KIND_REQUEST),
        (
            lambda c: c.update_payout_invoice(TASK_ID, "lnbcrt2", seal_invoice=False),
            "payout-invoice",
            "payout-invoice",
            {"payout_invoice": "lnbcrt2"},
            KIND_REQUEST,
        ),
        (  # a swap report sends only the txids it knows
            lambda c: c.report_swap(
                TASK_ID, role="payout", swap_id="p1", swap_api="https://b.example", claim_txid="c1"
            ),
            "swaps",
            "swap",
            {
                "role": "payout",
                "swap_id": "p1",
                "swap_api": "https://b.example",
                "claim_txid": "c1",
            },
            KIND_REQUEST,
        ),
    ],
)
async def test_task_writes_carry_op_and_task_tags(
    call: Any, path: str, op: str, content: dict[str, Any], kind: int
) -> None:
    recorder = Recorder(ok())
    async with make_client(recorder) as client:
        await call(client)

    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("POST", f"/v1/tasks/{TASK_ID}/{path}")
    event = recorder.bodies()[0]["request"]
    assert verify_event(event)
    assert event["kind"] == kind
    expected = [["op", op], ["task", TASK_ID], ["key", request.headers["Idempotency-Key"]]]
    if op == "proof":
        expected.append(["prev", "ab" * 32])
    assert event["tags"] == expected
    assert json.loads(event["content"]) == content


@pytest.mark.parametrize(
    ("visibility", "override", "sealed"),
    [
        ("private", None, True),
        ("public", None, False),
        ("public", True, True),
        ("private", False, False),
    ],
)
async def test_a_payout_invoice_goes_sealed_to_the_operator_for_a_private_task(
    visibility: str, override: bool | None, sealed: bool
) -> None:
    """Left out, ``seal_invoice`` follows the task's visibility (read first); either way it can
    be forced. Sealed, the content carries only the ciphertext, which the operator opens."""
    operator = NostrKeys.generate()
    keys = NostrKeys.generate()
    answers = [] if override is not None else [ok({"task_id": TASK_ID, "visibility": visibility})]
    answers += [ok({"operator_pubkey": operator.pubkey_hex, "arbiters": []}), ok()]
    recorder = Recorder(*answers)
    async with make_client(recorder, keys) as client:
        await client.update_payout_invoice(TASK_ID, "lnbcrt2", seal_invoice=override)
    content = json.loads(json.loads(recorder.requests[-1].content)["request"]["content"])
    if not sealed:
        assert content == {"payout_invoice": "lnbcrt2"}
        return
    assert set(content) == {"payout_invoice_sealed"}
    assert open_sealed(operator, keys.pubkey_hex, content["payout_invoice_sealed"]) == "lnbcrt2"


async def test_transport_errors_are_retried_with_the_same_event_and_key() -> None:
    recorder = Recorder(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("x"),
        ok(),
    )
    async with make_client(recorder) as client:
        assert await client.approve(TASK_ID) == {"task_id": TASK_ID}

    assert len(recorder.requests) == 4
    assert len({request.headers["Idempotency-Key"] for request in recorder.requests}) == 1
    assert len({body["request"]["id"] for body in recorder.bodies()}) == 1


async def test_retries_give_up_after_the_configured_count() -> None:
    recorder = Recorder(httpx.ConnectError("down"))
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    async with TaskholdClient(BASE, NostrKeys.generate(), http=http, retries=3) as client:
        client._sleep = _no_wait
        with pytest.raises(httpx.ConnectError):
            await client.claim(TASK_ID)

    assert len(recorder.requests) == 4


async def _no_wait(delay_s: float) -> None:
    return None


async def test_the_default_retries_outlast_a_server_restart() -> None:
    waited: list[float] = []

    async def sleep(delay_s: float) -> None:
        waited.append(delay_s)

    recorder = Recorder(httpx.ConnectError("restarting"))
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    async with TaskholdClient(BASE, NostrKeys.generate(), http=http, sleep=sleep) as client:
        with pytest.raises(httpx.ConnectError):
            await client.approve(TASK_ID)

    assert sum(waited) >= 10  # a restart takes 2-3 s
    assert max(waited) <= 2  # and the first attempt after it comes soon


async def test_a_same_key_call_resends_the_event_signed_first() -> None:
    recorder = Recorder(*[httpx.ConnectError("down")] * 9, ok({"state": "VERIFIED"}))
    async with make_client(recorder) as client:
        client._clock = iter(range(NOW, NOW + 100)).__next__  # every signature differs
        with pytest.raises(httpx.ConnectError):
            await client.approve(TASK_ID, idempotency_key="k")
        assert await client.approve(TASK_ID, idempotency_key="k") == {"state": "VERIFIED"}
        await client.approve(TASK_ID, idempotency_key="other")
        await client.reject(TASK_ID, "no", idempotency_key="k")

    ids = [body["request"]["id"] for body in recorder.bodies()]
    assert len(ids) == 12
    assert len(set(ids[:10])) == 1  # the first event, attempt after attempt and call after call
    assert len(set(ids)) == 3  # another key, or another request under the key, is signed anew


async def test_caller_chosen_idempotency_key_is_sent() -> None:
    recorder = Recorder(ok())
    async with make_client(recorder) as client:
        await client.approve(TASK_ID, idempotency_key="my-key")
        await client.approve(TASK_ID)
        await client.approve(TASK_ID)

    keys = [request.headers["Idempotency-Key"] for request in recorder.requests]
    assert keys[0] == "my-key" and len(set(keys)) == 3


async def test_problem_json_raises_with_its_code() -> None:
    problem = {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "code": "wrong_state",
        "detail": "task is CLAIMED; approve needs SUBMITTED",
    }
    recorder = Recorder(
        httpx.Response(409, json=problem, headers={"content-type": "application/problem+json"})
    )
    async with make_client(recorder) as client:
        with pytest.raises(TaskholdAPIError) as info:
            await client.approve(TASK_ID)

    error = info.value
    assert (error.status, error.code, error.title, error.detail) == (
        409,
        "wrong_state",
        "Conflict",
        problem["detail"],
    )
    assert len(recorder.requests) == 1, "a refusal is an answer, not a transport error"


async def test_non_json_error_still_raises_api_error() -> None:
    recorder = Recorder(httpx.Response(502, text="<html>bad gateway</html>"))
    async with make_client(recorder) as client:
        with pytest.raises(TaskholdAPIError) as info:
            await client.get_task(TASK_ID)

    assert (info.value.status, info.value.code) == (502, "http_502")


async def test_reads() -> None:
    recorder = Recorder(ok({"tasks": []}))
    async with make_client(recorder) as client:
        assert await client.list_tasks(state="FUNDED", limit=5, employer=None) == {"tasks": []}
        await client.get_task(TASK_ID)
        await client.transitions(TASK_ID)
        await client.info()

    urls = [(r.method, r.url.path, dict(r.url.params)) for r in recorder.requests]
    assert urls == [
        ("GET", "/v1/tasks", {"state": "FUNDED", "limit": "5"}),
        ("GET", f"/v1/tasks/{TASK_ID}", {}),
        ("GET", f"/v1/tasks/{TASK_ID}/transitions", {}),
        ("GET", "/v1/info", {}),
    ]


async def test_task_ids_cannot_escape_their_path() -> None:
    recorder = Recorder(ok())
    async with make_client(recorder) as client:
        await client.get_task("../info")

    assert recorder.requests[0].url.raw_path == b"/v1/tasks/..%2Finfo"


async def test_wait_for_state_polls_until_a_state_matches() -> None:
    recorder = Recorder(ok({"state": "PENDING_FUNDING"}), ok({"state": "FUNDED"}))
    seen: list[str] = []
    async with make_client(recorder) as client:
        task = await client.wait_for_state(
            TASK_ID,
            {"FUNDED", "EXPIRED"},
            timeout_s=5,
            poll_s=0,
            on_poll=lambda t: seen.append(t["state"]),
        )

    assert task["state"] == "FUNDED" and seen == ["PENDING_FUNDING", "FUNDED"]


async def test_wait_for_state_times_out() -> None:
    recorder = Recorder(ok({"state": "CLAIMED"}))
    async with make_client(recorder) as client:
        with pytest.raises(TimeoutError, match="still CLAIMED"):
            await client.wait_for_state(TASK_ID, {"PAID"}, timeout_s=0.05, poll_s=0.01)


async def test_sim_helpers_are_plain_posts_and_not_retried() -> None:
    recorder = Recorder(ok({"payment_request": "lnbcrt1"}), ok({"height": 7}), ok({}))
    async with make_client(recorder) as client:
        assert await client.sim_invoice(1000, memo="reward") == {"payment_request": "lnbcrt1"}
        assert await client.sim_mine(6) == {"height": 7}
        await client.sim_pay("lnbcrt1")

    assert [(r.url.path, "Idempotency-Key" in r.headers) for r in recorder.requests] == [
        ("/v1/sim/invoice", False),
        ("/v1/sim/mine", False),
        ("/v1/sim/pay", False),
    ]
    assert recorder.bodies() == [
        {"amount_msat": 1000, "wallet": "worker", "memo": "reward"},
        {"blocks": 6},
        {"payment_request": "lnbcrt1", "wallet": "employer"},
    ]

    failing = Recorder(httpx.ConnectError("down"))
    async with make_client(failing) as client:
        with pytest.raises(httpx.ConnectError):
            await client.sim_mine(1)
    assert len(failing.requests) == 1


async def test_owned_http_client_is_closed() -> None:
    client = TaskholdClient(BASE, NostrKeys.generate())
    async with client:
        pass

    assert client._http.is_closed
