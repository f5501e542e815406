"""What ``taskhold keys init|status`` do, apart from printing: usable from tests and demo.
``rotate`` writes the public log as well, so it lives in :mod:`taskhold.publiclog.rotation`.

Every function opens the key store, does its one job and closes it again. None of them returns
or prints a secret: reports hold labels, attributes, names and public keys only.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from typing import Any

from taskhold.journal.chain import AuditLog
from taskhold.settings import Settings
from taskhold.tasks import SYSTEM_ACTOR

from .audited import audited, close_key_store
from .operator import (
    OPERATOR,
    load_operator_keys,
    operator_key_file,
    seal_plaintext_operator_key,
)
from .sealed import SecretSealer
from .softhsm import PRODUCTION_NOTE, DevToken, default_pin_file, ensure_dev_token, is_softhsm
from .stores import open_key_store, preimage_key_file, resolve_pin

__all__ = ["InitReport", "init_key_store", "key_store_status"]


@dataclass
class InitReport:
    keystore: str
    created: list[str] = field(default_factory=list)
    operator_pubkey: str = ""
    notes: list[str] = field(default_factory=list)
    dev_token: DevToken | None = None

    def audit_details(self) -> dict[str, Any]:
        return {
            "keystore": self.keystore,
            "created": self.created,
            "operator_pubkey": self.operator_pubkey,
        }


def _dev_token(settings: Settings) -> DevToken | None:
    if settings.keystore != "pkcs11" or not is_softhsm(settings.pkcs11_module):
        return None
    return ensure_dev_token(settings.data_dir, settings.pkcs11_token_label, resolve_pin(settings))


def init_key_store(
    settings: Settings, audit: AuditLog | None = None, *, actor: str = SYSTEM_ACTOR
) -> InitReport:
    """Create whatever is missing: the SoftHSM2 token (development), the token keys or the key
    file, and the operator key (sealing a plaintext one left by the file store). Idempotent."""
    report = InitReport(keystore=settings.keystore)
    report.dev_token = _dev_token(settings)
    if report.dev_token is not None:
        if report.dev_token.created:
            report.created.append(f"token:{report.dev_token.label}")
        report.notes.append(PRODUCTION_NOTE)
    key_file_existed = preimage_key_file(settings.data_dir).exists()
    raw = open_key_store(settings, create_missing=True)
    store = audited(raw, audit, actor=actor) if audit is not None else raw
    try:
        report.created += list(getattr(raw, "created", []))
        if settings.keystore == "file" and not key_file_existed:
            report.created.append("preimage.key")
        if isinstance(store, SecretSealer):
            moved = seal_plaintext_operator_key(store, settings.data_dir)
            if moved is not None:
                report.created.append(f"sealed:{OPERATOR}")
                report.notes.append("the plaintext operator key was sealed and its file removed")
        operator_exists = (
            OPERATOR in store.sealed_names()
            if isinstance(store, SecretSealer)
            else operator_key_file(settings.data_dir).exists()
        )
        keys = load_operator_keys(store, settings.data_dir)
        if not operator_exists:
            report.created.append("operator key")
        report.operator_pubkey = keys.pubkey_hex
    finally:
        close_key_store(raw)
    return report


def key_store_status(settings: Settings) -> dict[str, Any]:
    """What exists, with its protection attributes: labels, types, names; never a value."""
    status: dict[str, Any] = {"keystore": settings.keystore, "data_dir": str(settings.data_dir)}
    if settings.keystore == "file":
        files = {}
        for path in (preimage_key_file(settings.data_dir), operator_key_file(settings.data_dir)):
            if path.exists():
                files[path.name] = {"mode": oct(stat.S_IMODE(path.stat().st_mode))}
        status["key_files"] = files
        return status
    status.update(
        module=str(settings.pkcs11_module),
        token=settings.pkcs11_token_label,
        pin_source="TASKHOLD_PKCS11_PIN"
        if settings.pkcs11_pin is not None
        else f"file {settings.pkcs11_pin_file or default_pin_file(settings.data_dir)}",
    )
    store = open_key_store(settings)
    try:
        describe = getattr(store, "describe", None)
        keys = describe() if callable(describe) else []
        status["token_keys"] = [
            {"label": k.label, "type": k.key_type, "bits": k.bits, **k.attributes} for k in keys
        ]
        status["sealed"] = store.sealed_names() if isinstance(store, SecretSealer) else []
    finally:
        close_key_store(store)
    return status
