"""Key store fixtures (import ``keystore_fixture``/``softhsm_fixture`` to use ``keystore`` and
``softhsm``): ``keystore`` runs a test once on the file store and once on PKCS#11.

PKCS#11 runs on a SoftHSM2 token. ``scripts/test`` makes one with ``scripts/services`` and names
it in ``TASKHOLD_TEST_PKCS11_TOKEN`` (with ``SOFTHSM2_CONF`` and ``TASKHOLD_REQUIRE_PKCS11=1``,
so a missing token fails the run); without that, a token is made for the session in a temporary
directory, or the PKCS#11 cases are skipped when softhsm2 is not installed.

SoftHSM2 reads its configuration once per process, so every in-process test shares one token;
tests that need a token of their own run ``taskhold`` in a subprocess. Under pytest-xdist
(``scripts/test`` runs two workers) each worker makes a token of its own in its temporary
directory, as a developer's run does: two processes creating the same missing key on one token
would both create it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from taskhold.settings import Settings

__all__ = [
    "KeystoreCase",
    "SoftHsm",
    "keystore_fixture",
    "pkcs11_case",
    "run_taskhold",
    "softhsm_fixture",
]

REQUIRE_PKCS11 = os.environ.get("TASKHOLD_REQUIRE_PKCS11") == "1"


@dataclass(frozen=True)
class SoftHsm:
    conf: str
    label: str
    pin: str


@dataclass(frozen=True)
class KeystoreCase:
    kind: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, data_dir: Path, **values: Any) -> Settings:
        return Settings(data_dir=data_dir, **{**self.overrides, **values})


def _new_token(directory: Path) -> SoftHsm:
    conf = directory / "softhsm2.conf"
    (directory / "tokens").mkdir(parents=True)
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    label = f"taskhold-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", "1234",
         "--so-pin", "5678"],
        check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )  # fmt: skip
    return SoftHsm(conf=str(conf), label=label, pin="1234")


@pytest.fixture(scope="session", name="softhsm")
def softhsm_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    label = os.environ.get("TASKHOLD_TEST_PKCS11_TOKEN")
    conf = os.environ.get("SOFTHSM2_CONF")
    if label and conf and not os.environ.get("PYTEST_XDIST_WORKER"):
        yield SoftHsm(conf=conf, label=label, pin=os.environ.get("TASKHOLD_TEST_PKCS11_PIN", ""))
        return
    if shutil.which("softhsm2-util") is None:
        if REQUIRE_PKCS11:
            pytest.fail("TASKHOLD_REQUIRE_PKCS11=1 but softhsm2-util is not installed")
        pytest.skip("softhsm2 is not installed")
    token = _new_token(tmp_path_factory.mktemp("softhsm"))
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = token.conf
    try:
        yield token
    finally:
        if before is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = before


def pkcs11_case(hsm: SoftHsm) -> KeystoreCase:
    return KeystoreCase(
        "pkcs11",
        {"keystore": "pkcs11", "pkcs11_token_label": hsm.label, "pkcs11_pin": hsm.pin},
    )


@pytest.fixture(params=["file", "pkcs11"], name="keystore")
def keystore_fixture(request: pytest.FixtureRequest) -> KeystoreCase:
    if request.param == "file":
        return KeystoreCase("file", {"keystore": "file"})
    return pkcs11_case(request.getfixturevalue("softhsm"))


def run_taskhold(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``taskhold ARGS`` in a new process (a token of its own, a fresh PKCS#11 login)."""
    result = subprocess.run(
        [sys.executable, "-m", "taskhold.cli", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"taskhold {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result
