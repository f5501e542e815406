"""Jurisdiction blocking: clients in the operator's blocked countries or address ranges get 451.

The operator lists countries (``blocked_countries``, placed by a MaxMind DB file,
``geoip_database``) and CIDR ranges (``blocked_networks``); both are published in its terms
(``/v1/info``, the signed info event), so nobody is refused by a rule they could not read.

Which requests are refused: every route, reads and writes, except

* ``OPEN_ROUTES``: the terms themselves (``/v1/info``, which says why a client is refused) and
  the health probe;
* ``EXIT_ROUTES``: the writes whose only effect is to pay a participant what a task already owes
  them (a payout or refund invoice, a forfeited deposit's invoice, the employer's cancel of its
  own task). A block closes the marketplace to a place; it never keeps money someone already
  put in or earned. The task rules still decide who may send these.

Releases, refunds and the guardian are the engine's: no request of anyone is needed for them,
so a block never stops them.

The address judged is the one the rate limits count (``ratelimit.client_ip``): the socket peer,
or the ``X-Forwarded-For`` client only when the peer is a ``trusted_proxies`` address (uvicorn
resolves it, ``taskhold.server.api_server``). A client that forges the header from anywhere else
is judged by its own address. An address that cannot be read is refused: a block that fails
open is no block.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maxminddb
from starlette.requests import Request

from taskhold.errors import Refusal, RefusalCode
from taskhold.settings import Settings

from .deps import services_of
from .ratelimit import client_ip

__all__ = [
    "EXIT_ROUTES",
    "OPEN_ROUTES",
    "BlockedJurisdiction",
    "GeoDatabaseError",
    "Jurisdiction",
    "jurisdiction_terms",
    "open_jurisdiction",
    "refuse_blocked_places",
]

OPEN_ROUTES = frozenset({"/v1/info", "/healthz"})
"""Route paths served to every client: the terms that name the blocks, and the health probe."""

EXIT_ROUTES = frozenset(
    f"/v1/tasks/{{task_id}}/{op}"
    for op in ("payout-invoice", "refund-invoice", "deposit-payout", "cancel")
)
"""Writes that only pay out what a task owes its participant: never blocked (module doc)."""

EXIT_RULE = (
    "clients in a blocked country or range are answered 451 on every route but /v1/info and"
    " /healthz; the writes that only pay a participant what a task owes them (payout-invoice,"
    " refund-invoice, deposit-payout, cancel) stay open, and releases and refunds, which the"
    " escrow engine carries out, are never stopped"
)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class GeoDatabaseError(Exception):
    """The configured MaxMind DB file is missing, unreadable, or not a country database."""


class BlockedJurisdiction(Refusal):
    status = 451
    code = RefusalCode.BLOCKED_JURISDICTION


@dataclass
class Jurisdiction:
    """The operator's blocks, ready to judge an address."""

    networks: tuple[IpNetwork, ...]
    countries: frozenset[str]
    geo: maxminddb.Reader | None

    def blocked(self, address: str) -> str | None:
        """Why ``address`` is blocked (the range or the country), or None."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "an address it cannot read"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for network in self.networks:
            if ip.version == network.version and ip in network:
                return f"range {network}"
        country = self.country_of(ip)
        if country is not None and country in self.countries:
            return f"country {country}"
        return None

    def country_of(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        if self.geo is None or not self.countries:
            return None
        try:
            record = self.geo.get(ip)
        except ValueError:  # an IPv6 address looked up in an IPv4-only database
            return None
        if not isinstance(record, dict):
            return None
        for member in ("country", "registered_country"):
            place = record.get(member)
            if isinstance(place, dict) and isinstance(place.get("iso_code"), str):
                return str(place["iso_code"]).upper()
        return None

    def close(self) -> None:
        if self.geo is not None:
            self.geo.close()


def open_jurisdiction(settings: Settings) -> Jurisdiction | None:
    """The blocks of ``settings``, its database opened once; None when nothing is blocked.

    Raises :class:`GeoDatabaseError` with a sentence for the operator when the database file
    is missing or is not a MaxMind country (or city) database."""
    if not settings.blocked_countries and not settings.blocked_networks:
        return None
    networks = tuple(ipaddress.ip_network(entry) for entry in settings.blocked_networks)
    geo = None
    if settings.blocked_countries:
        assert settings.geoip_database is not None  # the settings check it
        geo = _open_database(settings.geoip_database)
    return Jurisdiction(networks, frozenset(settings.blocked_countries), geo)


def _open_database(path: Path) -> maxminddb.Reader:
    where = f"geoip_database {path}"
    if not path.is_file():
        raise GeoDatabaseError(f"{where}: no such file (a GeoLite2-Country .mmdb is expected)")
    try:
        reader = maxminddb.open_database(str(path))
    except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
        raise GeoDatabaseError(f"{where} is not a readable MaxMind DB file: {exc}") from None
    kind = str(reader.metadata().database_type)
    if "Country" not in kind and "City" not in kind:
        reader.close()
        raise GeoDatabaseError(
            f"{where} is a {kind!r} database; blocked_countries needs a Country or City one"
        )
    return reader


def jurisdiction_terms(settings: Settings) -> dict[str, Any]:
    """The blocks as the terms publish them."""
    return {
        "blocked_countries": list(settings.blocked_countries),
        "blocked_networks": list(settings.blocked_networks),
        "status": 451,
        "rule": EXIT_RULE,
    }


async def refuse_blocked_places(request: Request) -> None:
    """An app-wide dependency: 451 for a client in a blocked place (see the module doc)."""
    jurisdiction = services_of(request).jurisdiction
    if jurisdiction is None:
        return
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    if path in OPEN_ROUTES or (request.method == "POST" and path in EXIT_ROUTES):
        return
    why = jurisdiction.blocked(client_ip(request))
    if why is not None:
        raise BlockedJurisdiction(
            f"this taskhold does not serve clients from {why} (its terms at /v1/info list the"
            " blocked countries and ranges); funds already owed to you are still paid out"
        )
