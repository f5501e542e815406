"""A development token: SoftHSM2 with a private configuration under the data directory.

SoftHSM2 keeps its tokens in files encrypted under the PIN; it is a stand-in for development
and CI, not a security boundary. Production points ``TASKHOLD_PKCS11_MODULE`` and
``TASKHOLD_PKCS11_TOKEN_LABEL`` at a real HSM's module and token instead.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is loaded, so :func:`use_data_dir_token` must
run before the first token is opened in the process.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from .errors import KeyStoreUnavailable

__all__ = [
    "PRODUCTION_NOTE",
    "DevToken",
    "default_pin_file",
    "ensure_dev_token",
    "is_softhsm",
    "softhsm_token_labels",
    "use_data_dir_token",
]

PRODUCTION_NOTE = (
    "This is a SoftHSM2 development token (files under the data directory, not a security "
    "boundary). In production set TASKHOLD_PKCS11_MODULE to your HSM's PKCS#11 module and "
    "TASKHOLD_PKCS11_TOKEN_LABEL to its token, and supply the PIN with TASKHOLD_PKCS11_PIN or "
    "TASKHOLD_PKCS11_PIN_FILE."
)


@dataclass(frozen=True)
class DevToken:
    conf: Path
    label: str
    created: bool
    pin_file: Path | None


def is_softhsm(module_path: Path) -> bool:
    return "softhsm" in module_path.name.lower()


def default_pin_file(data_dir: Path) -> Path:
    return data_dir / "keys" / "pkcs11.pin"


def _data_dir_conf(data_dir: Path) -> Path:
    return data_dir / "softhsm2" / "softhsm2.conf"


def use_data_dir_token(data_dir: Path) -> Path | None:
    """Point SoftHSM2 at the data directory's token store unless ``SOFTHSM2_CONF`` is set."""
    configured = os.environ.get("SOFTHSM2_CONF")
    if configured:
        return Path(configured)
    conf = _data_dir_conf(data_dir)
    if conf.exists():
        os.environ["SOFTHSM2_CONF"] = str(conf)
        return conf
    return None


def _util() -> str:
    util = shutil.which("softhsm2-util")
    if util is None:
        raise KeyStoreUnavailable("softhsm2-util not found: install Debian's softhsm2 package")
    return util


def softhsm_token_labels() -> list[str]:
    """Labels of the initialised tokens SoftHSM2 sees with the current configuration."""
    shown = subprocess.run(
        [_util(), "--show-slots"], check=True, capture_output=True, text=True
    ).stdout
    labels = []
    for line in shown.splitlines():
        name, _, value = line.strip().partition(":")
        if name == "Label" and value.strip():
            labels.append(value.strip())
    return labels


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def ensure_dev_token(data_dir: Path, label: str, pin: SecretStr | None) -> DevToken:
    """The SoftHSM2 token ``label``, created if it does not exist (idempotent).

    Without ``SOFTHSM2_CONF`` the token store goes under ``<data_dir>/softhsm2``. Without a
    configured PIN a random one is made and kept in ``<data_dir>/keys/pkcs11.pin`` (0600).
    """
    conf = use_data_dir_token(data_dir)
    if conf is None:
        conf = _data_dir_conf(data_dir)
        tokens = conf.parent / "tokens"
        conf.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tokens.mkdir(exist_ok=True, mode=0o700)
        conf.write_text(
            f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
        os.environ["SOFTHSM2_CONF"] = str(conf)
    if label in softhsm_token_labels():
        return DevToken(conf=conf, label=label, created=False, pin_file=None)
    pin_file = None
    if pin is None:
        pin_file = default_pin_file(data_dir)
        if pin_file.exists():
            pin = SecretStr(pin_file.read_text().strip())
        else:
            pin = SecretStr(secrets.token_hex(16))
            _write_private(pin_file, pin.get_secret_value())
    init = subprocess.run(
        [
            _util(), "--init-token", "--free", "--label", label,
            "--pin", pin.get_secret_value(), "--so-pin", secrets.token_hex(16),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if init.returncode != 0:
        raise KeyStoreUnavailable(f"softhsm2-util could not create token {label!r}")
    return DevToken(conf=conf, label=label, created=True, pin_file=pin_file)
