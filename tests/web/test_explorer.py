"""The audit explorer in a real browser (Debian's Chromium) against a real ``taskhold serve``
after a task's whole life through the participant command line: every entry ticked on the
server's own relay; a cross where an entry is missing from a relay that holds all the others;
an equivocation shown as such; a hostile relay's forged and foreign events crossed, its markup
shown as text. Screenshots are kept under ``test-artifacts/screenshots/``."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from support.browser import chromium_or_skip, run_in_browser
from support.crash_harness import Serve
from support.relay_process import publish, relay_processes
from support.task_cli import key_file, serve_on_sim, task_cli
from support.task_flows import tag
from websockets.sync.server import Server, ServerConnection, serve

from taskhold.audit import fetch_log
from taskhold.keys.signer import load_or_create_key_file
from taskhold.nostr import NostrKeys

MARKUP_TITLE = "<b>Fix</b> the typo <img src=x onerror=window.__pwned=true>"


def cli_as(server: Serve, key: Path, *args: str) -> dict[str, Any]:
    ran = task_cli(*args, "--server", server.url, "--key-file", str(key), "--json")
    assert ran.code == 0, ran.stderr
    return ran.json()


@dataclass(frozen=True)
class PaidLog:
    server: Serve
    operator: str
    events: list[dict[str, Any]]

    def entry(self, op: str) -> dict[str, Any]:
        return next(e for e in self.events if tag(e, "op") == op)

    def explore(self, request: pytest.FixtureRequest, *visits: dict[str, str]) -> dict[str, Any]:
        """The explorer.mjs report of ``visits`` ({name, query}), by visit name."""
        report = run_in_browser("explorer.mjs", self.server.url, request.node.name, visits=visits)
        assert all(Path(shot).stat().st_size > 0 for shot in report["screenshots"])
        visited: dict[str, Any] = report["visits"]
        return visited


@pytest.fixture(scope="module")
def paid_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaidLog]:
    """A server whose log holds one task created, funded, claimed, proved, approved and PAID,
    all of it published on its relay; with the server's info and the log's events."""
    chromium_or_skip()
    keys = tmp_path_factory.mktemp("keys")
    with serve_on_sim(tmp_path_factory.mktemp("serve")) as server:
        employer, worker = key_file(keys / "employer.key"), key_file(keys / "worker.key")
        task_id = cli_as(server, employer, "create", MARKUP_TITLE, "--amount-sat", "2100")[
            "task_id"
        ]
        cli_as(server, employer, "fund", task_id, "--wallet", "sim")
        cli_as(server, worker, "claim", task_id)
        cli_as(server, worker, "proof", task_id, "--field", "url=https://example.org/pr/1",
               "--wallet", "sim")  # fmt: skip
        assert cli_as(server, employer, "approve", task_id)["state"] == "PAID"
        info = httpx.get(f"{server.url}/v1/info").json()
        operator = info["operator_pubkey"]
        yield PaidLog(server, operator, published_log(info["relays"], operator))


def published_log(relays: list[str], operator: str) -> list[dict[str, Any]]:
    """The operator's entries once the relay holds the whole log up to the payout (the outbox
    publishes after the API answered)."""
    for _ in range(200):
        fetched = asyncio.run(fetch_log(relays, operator))
        entries = sorted(fetched.entries, key=lambda e: int(tag(e, "gseq") or "0"))
        ops = [tag(e, "op") for e in entries]
        gseqs = [int(tag(e, "gseq") or "-1") for e in entries]
        if "ReleaseCompleted" in ops and gseqs == list(range(len(entries))):
            return entries
        time.sleep(0.1)
    raise AssertionError(f"the relay never held the whole log: {ops}")


def query(operator: str, *relays: str) -> str:
    return "?" + urlencode([("operator", operator), *(("relay", url) for url in relays)])


def bad_rows(visit: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in visit["rows"] if row["verdict"] != "ok"]


def test_the_explorer_ticks_a_clean_log_and_crosses_a_deleted_entry(
    paid_log: PaidLog, request: pytest.FixtureRequest
) -> None:
    operator, events = paid_log.operator, paid_log.events
    proof = paid_log.entry("ProofSubmitted")
    deleted_gseq = int(tag(proof, "gseq") or "")
    with relay_processes() as start_relay:
        holed = start_relay()
        asyncio.run(publish(holed, [e for e in events if e is not proof]))
        visits = paid_log.explore(
            request,
            {"name": "clean-log"},
            {"name": "entry-deleted", "query": query(operator, holed)},
        )
    clean, holed_visit = visits["clean-log"], visits["entry-deleted"]

    # Defaults come from the server and say so; every entry of the real lifecycle is ticked.
    assert clean["origin"] == "server" and clean["operator_input"] == operator
    assert (clean["status"], clean["problems"], clean["entries"]) == ("clean", 0, len(events))
    assert "all verified" in clean["summary"]
    assert bad_rows(clean) == []
    assert [row["mark"] for row in clean["rows"]] == ["✓"] * len(events)
    assert [row["gseq"] for row in clean["rows"]] == [str(g) for g in range(len(events))]
    release = next(row for row in clean["rows"] if row["op"] == "ReleaseCompleted")
    assert (release["preimage"], release["payout"]) == ("ok", "proven")

    # The relay that lost one entry: a gap row with a cross where it was, and the crosses its
    # absence causes (the task's chain, the payout whose terms it signed); nothing else.
    assert holed_visit["status"] == "findings"
    assert holed_visit["entries"] == len(events) - 1
    gap = next(row for row in holed_visit["rows"] if row["kind"] == "gap")
    assert (gap["first"], gap["last"], gap["mark"]) == (str(deleted_gseq),) * 2 + ("✗",)
    assert f"entry {deleted_gseq} missing" in gap["text"]
    crossed = {row["op"] for row in bad_rows(holed_visit) if row["kind"] == "entry"}
    assert crossed == {"SubmissionApproved", "ReleaseCompleted"}


def test_an_equivocated_entry_is_shown_with_both_ids_for_a_key_given_as_npub(
    paid_log: PaidLog, request: pytest.FixtureRequest
) -> None:
    operator, events = paid_log.operator, paid_log.events
    keys = load_or_create_key_file(paid_log.server.data_dir / "keys" / "operator.key")
    assert keys.pubkey_hex == operator
    original = paid_log.entry("FundingAccepted")
    twin = keys.sign_event(
        original["kind"], original["content"],
        [["state", "ab" * 32] if t[0] == "state" else t for t in original["tags"]],
        original["created_at"],
    )  # fmt: skip
    with relay_processes() as start_relay:
        relay = start_relay()
        asyncio.run(publish(relay, [*events, twin]))
        visits = paid_log.explore(
            request, {"name": "equivocation", "query": query(keys.npub, relay)}
        )
    visit = visits["equivocation"]
    assert visit["status"] == "findings"
    # The key given as an npub is the operator's hex key, and the page says where it came from.
    assert visit["origin"] == "address" and visit["operator_input"] == keys.npub
    assert f"Operator {operator};" in visit["result_text"]
    (row,) = [row for row in visit["rows"] if row["kind"] == "equivocation"]
    assert row["gseq"] == tag(original, "gseq")
    assert set(row["event_ids"].split()) == {original["id"], twin["id"]}
    assert original["id"] in row["text"] and twin["id"] in row["text"]
    twins = [r for r in visit["rows"] if r["event_id"] in (original["id"], twin["id"])]
    assert [r["mark"] for r in twins] == ["✗", "✗"]


def _o_tag(event: dict[str, Any]) -> str | None:
    tags = event.get("tags")
    return tag(event, "o") if isinstance(tags, list) else None


class HostileRelay:
    """A relay that answers every REQ with the events it was given, whatever the filter asks
    (other authors' events included), in a thread of this process."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.server: Server = serve(self.handle, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, ws: ServerConnection) -> None:
        for message in ws:
            verb, *rest = json.loads(message)
            if verb != "REQ":
                continue
            sub, wanted = rest[0], rest[1]
            if wanted.get("kinds") == [3910]:
                numbers = wanted.get("#o")
                for event in self.events:
                    place = _o_tag(event)
                    if numbers is None or place is None or place in numbers:
                        ws.send(json.dumps(["EVENT", sub, event]))
            ws.send(json.dumps(["EOSE", sub]))

    def __enter__(self) -> HostileRelay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


def test_a_hostile_relays_forgeries_are_crossed_and_its_markup_stays_text(
    paid_log: PaidLog, request: pytest.FixtureRequest
) -> None:
    operator, events = paid_log.operator, paid_log.events
    claimed = paid_log.entry("TaskClaimed")
    sig = claimed["sig"]
    forged_sig = {**claimed, "sig": sig[:-1] + ("0" if sig[-1] != "0" else "1")}
    stranger = NostrKeys.generate()
    foreign = stranger.sign_event(
        3910, json.dumps({"event": {"title": "<script>window.__pwned=true</script>"}}),
        [["gseq", "1"], ["o", "1"], ["op", "<img src=x onerror=window.__pwned=true>"]], 1,
    )  # fmt: skip
    served = [forged_sig if e is claimed else e for e in events] + [foreign, {"id": "<b>x</b>"}]
    with HostileRelay(served) as relay:
        visits = paid_log.explore(
            request, {"name": "hostile-relay", "query": query(operator, relay.url)}
        )
    visit = visits["hostile-relay"]
    assert visit["status"] == "findings"
    by_id = {row["event_id"]: row for row in visit["rows"] if row["event_id"]}
    assert by_id[claimed["id"]]["mark"] == "✗"
    assert "bad signature" in by_id[claimed["id"]]["text"]
    assert by_id[foreign["id"]]["mark"] == "✗"
    assert "not the operator" in by_id[foreign["id"]]["text"]
    # The foreign event takes no place in the log: the entry at its gseq is the operator's.
    assert by_id[events[1]["id"]]["mark"] == "✓"
    # Markup from the log (the task's title, the stranger's op tag) is shown as text.
    assert "<b>Fix</b> the typo <img src=x" in visit["result_text"]
    assert "<img src=x onerror=window.__pwned=true>" in by_id[foreign["id"]]["text"]
    assert visit["markup_in_result"] == 0 and visit["pwned"] is False
