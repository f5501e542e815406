"""The operator's Nostr key: sealed by the PKCS#11 store, rotated with the old key kept, signing
only the kinds its policy allows, every signature noted for the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.keystores import (  # the fixtures keystore and softhsm
    KeystoreCase,
    SoftHsm,
    keystore_fixture,  # noqa: F401
    pkcs11_case,
    softhsm_fixture,  # noqa: F401
)

from taskhold.errors import Forbidden
from taskhold.journal.chain import AuditLog
from taskhold.keys.admin import init_key_store
from taskhold.keys.audited import audited, close_key_store
from taskhold.keys.operator import (
    OPERATOR,
    OPERATOR_PREVIOUS,
    load_operator_keys,
    operator_key_file,
    rotate_operator_key,
    seal_plaintext_operator_key,
)
from taskhold.keys.sealed import SecretSealer
from taskhold.keys.signer import LocalSigner, load_or_create_key_file
from taskhold.keys.stores import open_key_store
from taskhold.nostr import NostrKeys, verify_event


def test_the_operator_key_is_stable_and_sealed(keystore: KeystoreCase, tmp_path: Path) -> None:
    settings = keystore.settings(tmp_path)
    report = init_key_store(settings)
    store = open_key_store(settings)
    try:
        keys = load_operator_keys(store, tmp_path)
        assert keys.pubkey_hex == report.operator_pubkey
        if keystore.kind == "pkcs11":
            assert isinstance(store, SecretSealer) and OPERATOR in store.sealed_names()
            assert not operator_key_file(tmp_path).exists()
            blob = (tmp_path / "keys" / "sealed" / "operator.bin").read_bytes()
            assert keys.secret_hex_unsafe().encode() not in blob
            assert bytes.fromhex(keys.secret_hex_unsafe()) not in blob
    finally:
        close_key_store(store)
    store = open_key_store(settings)
    try:
        assert load_operator_keys(store, tmp_path).pubkey_hex == report.operator_pubkey
    finally:
        close_key_store(store)


def test_rotation_changes_the_key_and_keeps_the_old(keystore: KeystoreCase, tmp_path: Path) -> None:
    settings = keystore.settings(tmp_path)
    before = init_key_store(settings).operator_pubkey
    store = open_key_store(settings)
    try:
        old, new = rotate_operator_key(store, tmp_path)
        assert old.pubkey_hex == before != new.pubkey_hex
        assert load_operator_keys(store, tmp_path).pubkey_hex == new.pubkey_hex
        if isinstance(store, SecretSealer):
            kept = NostrKeys.from_secret_hex(store.unseal(OPERATOR_PREVIOUS).decode())
        else:
            kept = load_or_create_key_file(operator_key_file(tmp_path, OPERATOR_PREVIOUS))
        assert kept.pubkey_hex == before
        # a rotation entry signed by the old key can name the new one
        entry = old.sign_event(3910, "", [["op", "key_rotation"], ["p", new.pubkey_hex]], 1)
        assert verify_event(entry) and entry["pubkey"] == before
    finally:
        close_key_store(store)


def test_a_plaintext_operator_key_is_sealed_by_init(softhsm: SoftHsm, tmp_path: Path) -> None:
    plain = load_or_create_key_file(operator_key_file(tmp_path))  # the file store's key
    settings = pkcs11_case(softhsm).settings(tmp_path)
    report = init_key_store(settings)
    assert report.operator_pubkey == plain.pubkey_hex
    assert not operator_key_file(tmp_path).exists()
    store = open_key_store(settings)
    try:
        assert isinstance(store, SecretSealer)
        assert seal_plaintext_operator_key(store, tmp_path) is None  # nothing left to move
        assert load_operator_keys(store, tmp_path).pubkey_hex == plain.pubkey_hex
    finally:
        close_key_store(store)


def test_a_plaintext_key_is_not_silently_replaced(softhsm: SoftHsm, tmp_path: Path) -> None:
    load_or_create_key_file(operator_key_file(tmp_path))
    settings = pkcs11_case(softhsm).settings(tmp_path)
    fresh = tmp_path / "other"
    init_key_store(pkcs11_case(softhsm).settings(fresh))  # token keys exist, no operator here
    store = open_key_store(settings)
    try:
        with pytest.raises(Exception, match="plain text"):
            load_operator_keys(store, tmp_path)
    finally:
        close_key_store(store)


def test_the_signer_refuses_kinds_outside_its_policy_and_reports_signatures() -> None:
    audit = AuditLog()
    signer = LocalSigner(
        NostrKeys.generate(),
        allowed_kinds=frozenset({3910, 30078}),
        observer=audit.signature_observer(),
    )
    with pytest.raises(Forbidden) as refused:
        signer.sign_event(1, "hello", [], 1_700_000_000)
    assert refused.value.code == "kind_not_allowed"
    assert audit.pending == 0
    event = signer.sign_event(3910, "entry", [], 1_700_000_000)
    assert verify_event(event)
    assert audit.pending == 1


def test_the_signer_reports_events_and_gift_wraps_as_signed_by_the_operator_key() -> None:
    keys, seen = NostrKeys.generate(), []
    signer = LocalSigner(keys, allowed_kinds=frozenset({3910, 1059}), observer=seen.append)
    event = signer.sign_event(3910, "entry", [], 1_700_000_000)
    wrap = signer.private_message(NostrKeys.generate().pubkey_hex, "hello", [])
    assert wrap["pubkey"] != keys.pubkey_hex  # the wrap's own key is a one-time one
    assert seen == [
        {"id": event["id"], "kind": 3910, "created_at": 1_700_000_000, "pubkey": keys.pubkey_hex},
        {
            "id": wrap["id"],
            "kind": 1059,
            "created_at": wrap["created_at"],
            "pubkey": keys.pubkey_hex,
        },
    ]


def test_a_private_message_the_policy_refuses_is_never_sealed() -> None:
    """The seal inside a gift wrap is the operator key's signature: a signer whose policy does
    not allow gift wraps refuses before it signs one, not after."""
    keys, sealed = NostrKeys.generate(), []

    class Watched:
        pubkey_hex = keys.pubkey_hex

        def private_message(self, *args: Any) -> dict[str, Any]:
            sealed.append(args)
            return keys.private_message(*args)

    watched: Any = Watched()
    signer = LocalSigner(watched, allowed_kinds=frozenset({3910}))
    with pytest.raises(Forbidden) as refused:
        signer.private_message(NostrKeys.generate().pubkey_hex, "hello", [])
    assert refused.value.code == "kind_not_allowed"
    assert sealed == []
    assert (
        LocalSigner(watched, allowed_kinds=frozenset({1059})).private_message(
            NostrKeys.generate().pubkey_hex, "hello", []
        )["kind"]
        == 1059
    )
    assert len(sealed) == 1


async def test_key_uses_are_noted(keystore: KeystoreCase, tmp_path: Path) -> None:
    settings = keystore.settings(tmp_path)
    init_key_store(settings)
    audit = AuditLog()
    raw = open_key_store(settings)
    store = audited(raw, audit)
    try:
        preimage = store.derive_preimage("task-1", 1)
        store.payment_hash("task-1", 1)
        load_operator_keys(store, tmp_path)
    finally:
        close_key_store(raw)
    queued = audit._pending
    actions = [item.action for item in queued]
    assert actions[:2] == ["key.derive_preimage", "key.payment_hash"]
    if keystore.kind == "pkcs11":
        assert actions[2:] == ["key.unseal"]
    assert preimage.hex() not in repr([item.details for item in queued])
