"""The key stores: the PKCS#11 key never leaves the token; preimages are the same in every
session and process; sealed secrets open only under their own name and token."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.exceptions import AttributeSensitive, PKCS11Error
from pydantic import SecretStr
from support.keystores import (  # the fixtures keystore and softhsm
    KeystoreCase,
    SoftHsm,
    keystore_fixture,  # noqa: F401
    pkcs11_case,
    softhsm_fixture,  # noqa: F401
)

from taskhold.keys import KeyStore
from taskhold.keys.admin import init_key_store
from taskhold.keys.audited import close_key_store
from taskhold.keys.errors import KeyStoreUnavailable
from taskhold.keys.node_seed import ldk_node_seed
from taskhold.keys.pkcs11 import HMAC_KEY_LABEL, SEAL_KEY_LABEL, Pkcs11KeyStore
from taskhold.keys.sealed import SealedSecretMissing, SecretSealer
from taskhold.keys.stores import open_key_store


@pytest.fixture
def pkcs11_store(softhsm: SoftHsm, tmp_path: Path) -> Iterator[Pkcs11KeyStore]:
    settings = pkcs11_case(softhsm).settings(tmp_path)
    init_key_store(settings)
    store = open_key_store(settings)
    assert isinstance(store, Pkcs11KeyStore)
    yield store
    store.close()


def test_the_hmac_key_cannot_be_read_or_made_extractable(pkcs11_store: Pkcs11KeyStore) -> None:
    key = pkcs11_store.token_key(HMAC_KEY_LABEL)
    with pytest.raises(AttributeSensitive):
        key[Attribute.VALUE]
    with pytest.raises(PKCS11Error):
        key[Attribute.EXTRACTABLE] = True
    with pytest.raises(PKCS11Error):
        key[Attribute.SENSITIVE] = False
    with pytest.raises(PKCS11Error):
        key.copy({Attribute.EXTRACTABLE: True, Attribute.TOKEN: False})
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.ALWAYS_SENSITIVE] is True


def test_the_hmac_key_cannot_be_wrapped_out(pkcs11_store: Pkcs11KeyStore) -> None:
    key = pkcs11_store.token_key(HMAC_KEY_LABEL)
    wrapping = key.session.generate_key(  # a session key that is allowed to wrap
        KeyType.AES, 256, template={Attribute.TOKEN: False, Attribute.WRAP: True}
    )
    for mechanism in (Mechanism.AES_KEY_WRAP, Mechanism.AES_KEY_WRAP_PAD):
        with pytest.raises(PKCS11Error):
            wrapping.wrap_key(key, mechanism=mechanism)  # type: ignore[attr-defined]
    seal_key = pkcs11_store.token_key(SEAL_KEY_LABEL)
    assert seal_key[Attribute.WRAP] is False  # and the sealing key may not wrap anything


def test_status_shows_protection_attributes(pkcs11_store: Pkcs11KeyStore) -> None:
    infos = {info.label: info for info in pkcs11_store.describe()}
    assert set(infos) == {HMAC_KEY_LABEL, SEAL_KEY_LABEL}
    assert infos[HMAC_KEY_LABEL].key_type == "GENERIC_SECRET"
    assert infos[SEAL_KEY_LABEL].key_type == "AES" and infos[SEAL_KEY_LABEL].bits == 256
    for info in infos.values():
        assert info.attributes["extractable"] is False
        assert info.attributes["sensitive"] is True
        assert info.attributes["never_extractable"] is True
        assert info.attributes["wrap"] is False


def _derive(store: KeyStore) -> bytes:
    return store.derive_preimage("task-0123", 1)


def test_same_preimage_across_sessions(keystore: KeystoreCase, tmp_path: Path) -> None:
    settings = keystore.settings(tmp_path)
    init_key_store(settings)
    first = open_key_store(settings)
    preimage = _derive(first)
    assert first.payment_hash("task-0123", 1) == hashlib.sha256(preimage).digest()
    assert len(preimage) == 32
    assert first.derive_preimage("task-0123", 2) != preimage
    assert first.derive_preimage("task-0124", 1) != preimage
    close_key_store(first)
    again = open_key_store(settings)  # a new session: the token was closed and reopened
    try:
        assert _derive(again) == preimage
    finally:
        close_key_store(again)


def test_same_preimage_in_another_process(keystore: KeystoreCase, tmp_path: Path) -> None:
    settings = keystore.settings(tmp_path)
    init_key_store(settings)
    store = open_key_store(settings)
    try:
        preimage = _derive(store)
    finally:
        close_key_store(store)
    env = {**os.environ, "TASKHOLD_DATA_DIR": str(tmp_path)}
    for name, value in keystore.overrides.items():
        env[f"TASKHOLD_{name.upper()}"] = str(value)
    code = (
        "from taskhold.settings import Settings\n"
        "from taskhold.keys.stores import open_key_store\n"
        "print(open_key_store(Settings()).payment_hash('task-0123', 1).hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == hashlib.sha256(preimage).hexdigest()


def test_seal_and_unseal(pkcs11_store: Pkcs11KeyStore, tmp_path: Path) -> None:
    secret = os.urandom(32)
    pkcs11_store.seal("macaroon", secret)
    assert isinstance(pkcs11_store, SecretSealer)
    assert pkcs11_store.unseal("macaroon") == secret
    assert "macaroon" in pkcs11_store.sealed_names()
    blob_path = tmp_path / "keys" / "sealed" / "macaroon.bin"
    blob = blob_path.read_bytes()
    assert secret not in blob
    assert oct(blob_path.stat().st_mode & 0o777) == "0o600"
    pkcs11_store.seal("macaroon", secret)
    assert blob_path.read_bytes() != blob  # a fresh nonce each time
    with pytest.raises(SealedSecretMissing):
        pkcs11_store.unseal("nothing-here")


def test_a_sealed_blob_opens_only_under_its_name_and_unaltered(
    pkcs11_store: Pkcs11KeyStore, tmp_path: Path
) -> None:
    pkcs11_store.seal("api-secret", b"sixteen bytes!!!")
    sealed = tmp_path / "keys" / "sealed"
    (sealed / "other.bin").write_bytes((sealed / "api-secret.bin").read_bytes())
    with pytest.raises(ValueError, match="does not open"):
        pkcs11_store.unseal("other")  # AAD = name: a blob moved to another name fails
    damaged = bytearray((sealed / "api-secret.bin").read_bytes())
    damaged[-1] ^= 1
    (sealed / "api-secret.bin").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="does not open"):
        pkcs11_store.unseal("api-secret")
    with pytest.raises(ValueError, match="not a valid"):
        pkcs11_store.seal("../escape", b"x")


def test_a_wrong_pin_is_refused_without_repeating_it(softhsm: SoftHsm, tmp_path: Path) -> None:
    case = pkcs11_case(softhsm)
    settings = case.settings(tmp_path, pkcs11_pin=SecretStr("wrong-pin-0420"))
    with pytest.raises(KeyStoreUnavailable) as refused:
        open_key_store(settings)
    assert "wrong-pin-0420" not in str(refused.value)


def test_an_unknown_token_is_refused(softhsm: SoftHsm, tmp_path: Path) -> None:
    settings = pkcs11_case(softhsm).settings(tmp_path, pkcs11_token_label="no-such-token")
    with pytest.raises(KeyStoreUnavailable, match="no-such-token"):
        open_key_store(settings)


def test_repr_shows_no_pin(pkcs11_store: Pkcs11KeyStore) -> None:
    shown = repr(pkcs11_store) + repr(pkcs11_store._config)
    assert "pin=" not in shown.lower() and "secretstr" not in shown.lower()


def test_one_session_serves_many_threads(pkcs11_store: Pkcs11KeyStore) -> None:
    expected = {f"task-{i}": pkcs11_store.derive_preimage(f"task-{i}", 1) for i in range(8)}

    def derive(task_id: str) -> tuple[str, bytes]:
        return task_id, pkcs11_store.derive_preimage(task_id, 1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(derive, [f"task-{i % 8}" for i in range(400)]))
    assert all(expected[task_id] == preimage for task_id, preimage in results)


def test_the_ldk_node_seed_is_derived_stable_and_apart_from_every_preimage(
    keystore: KeystoreCase, tmp_path: Path
) -> None:
    """An embedded node's seed comes from the store's key, the same after a reopen, and never
    equals a preimage (its HMAC input has its own label)."""
    settings = keystore.settings(tmp_path)
    init_key_store(settings)
    first = open_key_store(settings)
    seed = ldk_node_seed(first)
    close_key_store(first)
    again = open_key_store(settings)
    try:
        assert ldk_node_seed(again) == seed
        assert len(seed) == 64 and seed[:32] != seed[32:]
        assert again.derive_preimage("ldk-node-seed/0", 0) not in (seed[:32], seed[32:])
    finally:
        close_key_store(again)


def test_a_store_that_cannot_derive_secrets_gives_no_node_seed() -> None:
    class PreimagesOnly:
        def derive_preimage(self, task_id: str, funding_round: int) -> bytes:
            return bytes(32)

        def payment_hash(self, task_id: str, funding_round: int) -> bytes:
            return bytes(32)

    with pytest.raises(KeyStoreUnavailable, match="cannot derive"):
        ldk_node_seed(PreimagesOnly())
