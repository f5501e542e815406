"""Jurisdiction blocking: 451 for clients in the operator's blocked ranges and countries, judged
by the address the server can trust; the terms name the blocks; money already in a task still
comes out; a bad database stops the start with a sentence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from support.cli import isolated_logging  # noqa: F401
from support.geoip import country_database
from support.stacks import Stack, http_from, served, terms_of
from support.task_flows import created, funded
from typer.testing import CliRunner

from taskhold.api.info import info_document
from taskhold.cli import cli
from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.nostr import NostrKeys
from taskhold.settings import Settings

BLOCKED_RANGE = "203.0.113.0/24"
IN_BLOCKED_RANGE = "203.0.113.9"
OPEN_ADDRESS = "198.51.100.7"
IN_BLOCKED_COUNTRY = "192.0.2.55"  # KP in the test database
IN_OPEN_COUNTRY = "198.51.100.7"  # DE in the test database


def _geo(tmp_path: Path) -> Path:
    return country_database(
        tmp_path / "country.mmdb", {"192.0.2.0/24": "KP", "198.51.100.0/24": "DE"}
    )


def _assert_451(response: httpx.Response) -> None:
    assert response.status_code == 451, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "blocked_jurisdiction"
    assert body["title"] == "Unavailable for legal reasons"
    assert "/v1/info" in body["detail"]


async def test_a_blocked_range_gets_451_and_an_open_one_goes_through(open_custom: Any) -> None:
    stack: Stack = await open_custom(blocked_networks=BLOCKED_RANGE)
    async with http_from(stack, IN_BLOCKED_RANGE) as blocked, http_from(stack, OPEN_ADDRESS) as ok:
        _assert_451(await blocked.get("/v1/tasks"))
        _assert_451(await blocked.get("/v1/tasks/" + "0" * 64))
        _assert_451(await blocked.post("/v1/tasks", json={"request": {}}))  # before parsing
        assert "range 203.0.113.0/24" in (await blocked.get("/v1/tasks")).json()["detail"]
        assert (await ok.get("/v1/tasks")).status_code == 200
        employer = TaskholdClient("http://taskhold.test", NostrKeys.generate(), http=ok)
        assert (await created(stack, employer))["state"] == "DRAFT"


async def test_the_terms_stay_open_and_name_the_blocks(open_custom: Any, tmp_path: Path) -> None:
    stack: Stack = await open_custom(
        blocked_networks="203.0.113.9/24, 2001:db8::/32",
        blocked_countries="kp,IR",
        geoip_database=_geo(tmp_path),
    )
    async with http_from(stack, IN_BLOCKED_RANGE) as blocked:
        info = await blocked.get("/v1/info")
        assert info.status_code == 200
        assert (await blocked.get("/healthz")).status_code == 200
    terms = info.json()["jurisdiction"]
    assert terms["blocked_countries"] == ["IR", "KP"]
    assert terms["blocked_networks"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert terms["status"] == 451
    assert terms_of(info) == info_document(stack.services)  # the signed info event says so too


async def test_a_blocked_country_is_found_in_the_database(open_custom: Any, tmp_path: Path) -> None:
    stack: Stack = await open_custom(blocked_countries="KP", geoip_database=_geo(tmp_path))
    async with (
        http_from(stack, IN_BLOCKED_COUNTRY) as blocked,
        http_from(stack, IN_OPEN_COUNTRY) as elsewhere,
        http_from(stack, "10.1.2.3") as unplaced,
        http_from(stack, "::ffff:192.0.2.56") as mapped,
    ):
        _assert_451(await blocked.get("/v1/tasks"))
        assert "country KP" in (await blocked.get("/v1/tasks")).json()["detail"]
        _assert_451(await mapped.get("/v1/tasks"))  # the IPv4 client behind an IPv6 socket
        assert (await elsewhere.get("/v1/tasks")).status_code == 200
        assert (await unplaced.get("/v1/tasks")).status_code == 200  # in no country listed


async def test_an_address_that_cannot_be_read_is_refused(open_custom: Any) -> None:
    stack: Stack = await open_custom(blocked_networks=BLOCKED_RANGE)
    async with http_from(stack, "not-an-address") as unknown:
        _assert_451(await unknown.get("/v1/tasks"))


async def test_a_blocked_employer_still_gets_its_refund(open_custom: Any) -> None:
    """Funded from an open address, then the employer is in a blocked place: the marketplace is
    closed to it, but cancelling its own task (an exit) goes through and the engine refunds."""
    stack: Stack = await open_custom(blocked_networks=BLOCKED_RANGE)
    keys = NostrKeys.generate()
    before = stack.world.employer.balance_msat
    task = await funded(stack, TaskholdClient("http://taskhold.test", keys, http=stack.http))
    async with http_from(stack, IN_BLOCKED_RANGE) as blocked:
        employer = TaskholdClient("http://taskhold.test", keys, http=blocked)
        _assert_451(await blocked.get(f"/v1/tasks/{task['task_id']}"))
        worker = TaskholdClient("http://taskhold.test", NostrKeys.generate(), http=blocked)
        with pytest.raises(TaskholdAPIError) as refused:
            await worker.claim(task["task_id"])
        assert (refused.value.status, refused.value.code) == (451, "blocked_jurisdiction")
        await employer.cancel(task["task_id"], reason="leaving")
    await stack.settle_engine()
    async with stack.services.store.transaction() as tx:
        refunded = await tx.load_task(task["task_id"])
    assert refunded is not None and refunded.state == "REFUNDED"
    assert stack.world.employer.balance_msat == before


async def _status(url: str, forwarded_for: str) -> int:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/v1/tasks", headers={"X-Forwarded-For": forwarded_for})
        return response.status_code


async def test_a_forged_forwarded_for_from_an_untrusted_peer_is_not_believed(
    open_custom: Any,
) -> None:
    """Real uvicorn, a peer on loopback that trusts no proxy: it is judged by its own address,
    whatever it names."""
    stack: Stack = await open_custom(blocked_networks=f"{BLOCKED_RANGE},127.0.0.0/8")
    async with served(stack) as url:
        assert await _status(url, OPEN_ADDRESS) == 451  # loopback is blocked; naming 198.51… fails
    stack = await open_custom(blocked_networks=BLOCKED_RANGE)
    async with served(stack) as url:
        assert await _status(url, IN_BLOCKED_RANGE) == 200  # judged by loopback, not the header


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(open_custom: Any) -> None:
    stack: Stack = await open_custom(blocked_networks=BLOCKED_RANGE, trusted_proxies="127.0.0.1")
    async with served(stack) as url:
        assert await _status(url, IN_BLOCKED_RANGE) == 451
        assert await _status(url, OPEN_ADDRESS) == 200


def test_countries_without_a_database_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="blocked_countries needs geoip_database"):
        Settings(data_dir=tmp_path, blocked_countries="KP")
    with pytest.raises(ValidationError, match="ISO 3166-1 alpha-2"):
        Settings(data_dir=tmp_path, blocked_countries="KPR", geoip_database=tmp_path / "x")
    with pytest.raises(ValidationError, match="is not a CIDR range"):
        Settings(data_dir=tmp_path, blocked_networks="203.0.113.0/33")
    result = CliRunner().invoke(
        cli, ["serve", "--data-dir", str(tmp_path)], env={"TASKHOLD_BLOCKED_COUNTRIES": "KP"}
    )
    assert result.exit_code == 2
    assert "blocked_countries needs geoip_database" in result.output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("isolated_logging")
@pytest.mark.parametrize("database", ["missing", "corrupt", "asn"])
def test_a_bad_database_stops_the_start_with_a_sentence(tmp_path: Path, database: str) -> None:
    path = tmp_path / "country.mmdb"
    if database == "corrupt":
        path.write_bytes(b"\x00" * 64 + b"not a maxmind database")
    elif database == "asn":
        country_database(path, {"192.0.2.0/24": "KP"}, database_type="GeoLite2-ASN")
    result = CliRunner().invoke(
        cli,
        ["serve", "--data-dir", str(tmp_path / "data")],
        env={"TASKHOLD_BLOCKED_COUNTRIES": "KP", "TASKHOLD_GEOIP_DATABASE": str(path)},
    )
    assert result.exit_code == 1
    expected = {
        "missing": "no such file",
        "corrupt": "is not a readable MaxMind DB file",
        "asn": "'GeoLite2-ASN' database",
    }[database]
    assert f"TASKHOLD_GEOIP_DATABASE: geoip_database {path}" in result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "data" / "taskhold.sqlite3").exists()  # stopped before anything
