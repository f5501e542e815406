"""Generated requests (schemathesis, from the API's own OpenAPI document) never get a 5xx.

Every operation is fuzzed with inputs that fit its schema and inputs that do not, plus writes
whose envelope is a validly signed event (by a task's employer, its worker or a stranger) with
generated content, so the checks behind the signature are reached too. The suite sends
``TASKHOLD_FUZZ_CASES`` requests (10,000 by default; ``scripts/test``, and so CI, sends 3,000
to keep the run short); ``scripts/fuzz`` sends 10,000 or more, with new cases each run.

It prints the share of each refusal code per kind of write body: bodies generated from the schema
are signed-event shaped, so most reach the signature check (``bad_signature``). The rest are
``malformed_event``: JSON Schema lets an integer be written ``5.0``, which the envelope refuses
since the event's id hashes the text as sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from support.stacks import Stack, close_stack, new_database, open_stack, stack_settings
from support.task_flows import funded, submitted

from taskhold.actions import ACTIONS
from taskhold.api.routes_tasks import op_path
from taskhold.nostr import NostrKeys

FUZZ_CASES = int(os.environ.get("TASKHOLD_FUZZ_CASES", "10000"))
FUZZ_SEED = os.environ.get("TASKHOLD_FUZZ_SEED", "0")
"""The same cases every run for a given seed (stable CI); ``random`` for new ones each run."""

_OPS_BY_PATH = {op_path(op): op for op in ACTIONS}
_CONTENT_KEYS = (
    "title", "description", "amount_msat", "deadline_at", "acceptance", "review_window_s",
    "dispute_window_s", "deposit", "proof", "payout_invoice", "reason", "winner", "note",
    "rating", "comment", "receipt", "depositor", "regex", "required_fields", "url_fields",
    "worker_msat",
)  # fmt: skip

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["lnbcrt1", "lnbcrt10u1", "(a+)+", r"(a)\1", "worker", "employer", "0"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_CONTENT = st.dictionaries(st.sampled_from(_CONTENT_KEYS) | st.text(max_size=6), _JSON)


class Fuzzer:
    """Cases drawn in a worker thread and sent to the app on the test's event loop."""

    def __init__(
        self, stack: Stack, loop: asyncio.AbstractEventLoop, parties: dict[str, Any]
    ) -> None:
        self.stack = stack
        self.loop = loop
        self.parties = parties
        self.statuses: Counter[int] = Counter()
        self.write_codes: Counter[tuple[str, str]] = Counter()
        """(how the write body was made, the answer's code): how far generated bodies get."""
        self.unsent = 0
        self.server_errors: list[str] = []

    def send(self, kwargs: dict[str, Any], origin: str | None = None) -> None:
        request = self.stack.http.request(
            kwargs["method"],
            kwargs["url"],
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            json=kwargs.get("json"),
            content=kwargs.get("data"),
        )
        try:
            response = asyncio.run_coroutine_threadsafe(request, self.loop).result(timeout=60)
        except (httpx.HTTPError, httpx.InvalidURL):  # httpx refused to send it: not a request
            self.unsent += 1
            return
        except Exception as exc:  # the in-process transport raises what the app raised: a 500
            self.statuses[500] += 1
            self.server_errors.append(f"{_described(kwargs)} -> {type(exc).__name__}: {exc}")
            return
        self.statuses[response.status_code] += 1
        if origin is not None:
            self.write_codes[origin, _code(response)] += 1
        if response.status_code >= 500:
            self.server_errors.append(
                f"{_described(kwargs)} -> {response.status_code} {response.text[:300]}"
            )

    def signed(self, kwargs: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
        """The case with its body replaced by a signed request for the endpoint's op."""
        path = httpx.URL(kwargs["url"]).path
        parts = path.split("/")  # ['', 'v1', 'tasks', id, op_path]
        op = "create" if len(parts) == 3 else _OPS_BY_PATH.get(parts[-1])
        if op is None:
            return kwargs
        url, task_id = httpx.URL(kwargs["url"]), None
        if op != "create":
            task_id = data.draw(st.sampled_from([parts[3], *self.parties["tasks"]]))
            if task_id != parts[3]:
                url = url.copy_with(path="/".join([*parts[:3], task_id, parts[4]]))
        keys = data.draw(st.sampled_from(self.parties["keys"]))
        tags = [["op", op]] + ([["task", task_id]] if task_id else [])
        if op == "proof":
            tags.append(["prev", data.draw(st.sampled_from(self.parties["heads"]))])
        content = json.dumps(data.draw(_CONTENT))
        kind = 3911 if ACTIONS[op].proof else 3912
        event = keys.sign_event(kind, content, tags, int(time.time()))
        key = data.draw(st.text(min_size=1, max_size=16, alphabet="abcdef0123456789"))
        return {
            **kwargs,
            "url": str(url),
            "json": {"request": event},
            "data": None,
            "headers": {**(kwargs.get("headers") or {}), "Idempotency-Key": key},
        }

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def run(self, schema: Any, cases: int) -> None:
        """Rounds over every operation and both modes, each round with a new seed, until
        ``cases`` requests were sent (operations with few inputs run out of new cases)."""
        operations = [result.ok() for result in schema.get_all_operations()]
        for round_number in range(100):
            missing = cases - self.sent
            if missing <= 0:
                return
            per_run = max(1, -(-missing // (2 * len(operations))))
            for operation in operations:
                for mode in _modes(operation):
                    self._fuzz(operation, mode, per_run, round_number)

    def _fuzz(self, operation: Any, mode: GenerationMode, examples: int, round_number: int) -> None:
        is_write = operation.method.upper() == "POST" and "/sim/" not in operation.path

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def fuzz(case: Any, data: st.DataObject) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://taskhold.test")
            origin = f"{mode.value} schema" if is_write else None
            if is_write and data.draw(st.booleans()):
                kwargs, origin = self.signed(kwargs, data), "signed"
            self.send(kwargs, origin)

        if FUZZ_SEED != "random":
            fuzz = seed(int(FUZZ_SEED) * 1000 + round_number)(fuzz)
        try:
            fuzz()
        except Unsatisfiable:  # where every input is a free string, nothing breaks the schema
            assert mode is GenerationMode.NEGATIVE, operation.label


def _code(response: httpx.Response) -> str:
    if response.status_code < 400:
        return "accepted"
    try:
        return str(response.json()["code"])
    except (ValueError, KeyError, TypeError):
        return "no code"


def _shares(codes: Counter[tuple[str, str]], origin: str) -> dict[str, float]:
    """Each code's share of the answers to write bodies made by ``origin``, largest first."""
    total = sum(n for (made, _), n in codes.items() if made == origin)
    counted = [(code, n / total) for (made, code), n in codes.most_common() if made == origin]
    return {code: round(share, 3) for code, share in counted}


def _described(kwargs: dict[str, Any]) -> str:
    body = json.dumps(kwargs.get("json"))[:500]
    return f"{kwargs['method']} {kwargs['url']} params={kwargs.get('params')} {body}"


def _modes(operation: Any) -> list[GenerationMode]:
    """Inputs that fit the schema, and ones that do not where the operation takes any."""
    inputs = operation.path_parameters, operation.query, operation.headers, operation.body
    if any(len(parameters) for parameters in inputs):
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


async def _parties(stack: Stack) -> dict[str, Any]:
    """Tasks in several states and the keys that may act on them, for signed writes."""
    employer_keys, worker_keys = NostrKeys.generate(), NostrKeys.generate()
    employer, worker = stack.client(employer_keys), stack.client(worker_keys)
    stack.services.settings.arbiters = [employer_keys.pubkey_hex]
    draft = await employer.create_task("Draft", "", 150_000_000, int(time.time()) + 3600)
    claimed = await funded(stack, employer)
    claimed = await worker.claim(claimed["task_id"])
    review = await submitted(stack, employer, worker)
    tasks = [draft["task_id"], claimed["task_id"], review["task_id"]]
    heads = [(await employer.get_task(task_id))["log_head"] for task_id in tasks]
    return {
        "tasks": tasks,
        "heads": heads,
        "keys": [employer_keys, worker_keys, NostrKeys.generate()],
    }


@pytest.mark.slow
async def test_no_generated_request_gets_a_server_error(tmp_path: Path) -> None:
    async with new_database("sqlite", tmp_path / "db") as url:
        stack = await open_stack(
            stack_settings(
                tmp_path,
                url,
                sim_routes_enabled=True,
                rate_limit_pubkey_per_s=0,
                rate_limit_ip_per_s=0,
            )
        )
        try:
            parties = await _parties(stack)
            app = stack.http._transport.app  # type: ignore[attr-defined]
            schema = schemathesis.openapi.from_dict(app.openapi())
            fuzzer = Fuzzer(stack, asyncio.get_running_loop(), parties)
            await asyncio.to_thread(fuzzer.run, schema, FUZZ_CASES)
        finally:
            await close_stack(stack)

    statuses = dict(sorted(fuzzer.statuses.items()))
    print(f"fuzz: {fuzzer.sent} requests ({fuzzer.unsent} not sendable), statuses {statuses}")
    origins = sorted({made for made, _ in fuzzer.write_codes})
    for origin in origins:
        print(f"fuzz: write bodies from {origin}: {_shares(fuzzer.write_codes, origin)}")
    assert not fuzzer.server_errors, "\n".join(fuzzer.server_errors[:20])
    assert fuzzer.sent >= FUZZ_CASES
    # Bodies that fit the schema are signed-event shaped: the signature check refuses most of
    # them, not the request's validation ("field missing").
    from_schema = _shares(fuzzer.write_codes, "positive schema")
    assert from_schema.get("bad_signature", 0) > 0.5, from_schema
