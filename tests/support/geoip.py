"""Small MaxMind DB files (the GeoLite2-Country layout) written for a test, with mmdb-writer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def country_database(
    path: Path, countries: Mapping[str, str], *, database_type: str = "GeoLite2-Country"
) -> Path:
    """Write ``{cidr: iso_code}`` as a MaxMind DB at ``path``: each range's record is
    ``{"country": {"iso_code": …}}``, as GeoLite2-Country has it."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for network, iso_code in countries.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": iso_code}})
    writer.to_db_file(str(path))
    return path
