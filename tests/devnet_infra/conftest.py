"""A fake btcd on TLS and the bitcoind shim in front of it, for every test here (no devnet)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_btcd import FakeBtcd, LdkStyleClient, self_signed_cert

from taskhold.devnet.bitcoind_shim import BitcoindShim

SHIM_USER = "ldk"
SHIM_PASS = "shim-secret-pw"


@pytest.fixture(scope="session")
def fake_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("fake-btcd"))


@pytest.fixture
def fake(fake_cert: tuple[Path, Path]) -> Iterator[FakeBtcd]:
    btcd = FakeBtcd(*fake_cert)
    btcd.start()
    yield btcd
    btcd.stop()


@pytest.fixture
def shim(fake: FakeBtcd, fake_cert: tuple[Path, Path]) -> Iterator[BitcoindShim]:
    with BitcoindShim(
        btcd_host="127.0.0.1",
        btcd_port=fake.port,
        btcd_cafile=fake_cert[0],
        btcd_user=fake.user,
        btcd_password=fake.password,
        user=SHIM_USER,
        password=SHIM_PASS,
    ) as running:
        yield running


@pytest.fixture
def client(shim: BitcoindShim) -> Iterator[LdkStyleClient]:
    with LdkStyleClient(shim.port, SHIM_USER, SHIM_PASS) as ldk:
        yield ldk
