"""Finding and importing LDK Node's Python module, built by ``scripts/build-ldk``.

The module is generated code plus a native library, cached outside the repo; it is not a pip
dependency. ``TASKHOLD_LDK_DIR`` (or the ``ldk_dir`` setting) names the directory that holds the
``ldk_node`` package: the last line ``scripts/build-ldk`` prints. The build carries taskhold's patch
(``ldk/patches/``) that lets a hold invoice ask for its final CLTV delta; a module without it can
hold an HTLC for only a few blocks, so it is refused rather than used.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["LDK_DIR_ENV", "LdkModuleMissing", "load_ldk_node", "patched_receive_method"]

LDK_DIR_ENV = "TASKHOLD_LDK_DIR"
PATCHED_RECEIVE = "receive_for_hash_with_final_cltv_delta"
"""The method taskhold's patch adds to ``Bolt11Payment``."""


class LdkModuleMissing(RuntimeError):
    """The LDK Node module is not built, not found, or lacks taskhold's patch."""


def load_ldk_node(module_dir: Path | None = None) -> ModuleType:
    """Import ``ldk_node`` from ``module_dir`` (default ``$TASKHOLD_LDK_DIR``)."""
    directory = module_dir or _env_dir()
    if directory is None:
        raise LdkModuleMissing(
            f"the LDK backend needs LDK Node's Python module: run scripts/build-ldk and set"
            f" {LDK_DIR_ENV} (or TASKHOLD_LDK_DIR in the settings) to the directory it prints"
        )
    if not (directory / "ldk_node" / "__init__.py").is_file():
        raise LdkModuleMissing(f"{directory} holds no ldk_node package; run scripts/build-ldk")
    path = str(directory)
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module("ldk_node")
    except (ImportError, OSError) as exc:
        raise LdkModuleMissing(f"cannot import ldk_node from {directory}: {exc}") from exc
    patched_receive_method(module)
    return module


def patched_receive_method(module: ModuleType) -> str:
    """The patched receive method's name; refuses a module built without the patch."""
    payment_class = getattr(module, "Bolt11Payment", None)
    if payment_class is None or not hasattr(payment_class, PATCHED_RECEIVE):
        raise LdkModuleMissing(
            f"this ldk_node has no Bolt11Payment.{PATCHED_RECEIVE}: it was built without"
            " taskhold's patch (ldk/patches/), and could hold an HTLC for only a few blocks"
        )
    return PATCHED_RECEIVE


def _env_dir() -> Path | None:
    value = os.environ.get(LDK_DIR_ENV, "").strip()
    return Path(value) if value else None
