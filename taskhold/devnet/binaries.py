"""Where the devnet's binaries are: the cache ``scripts/build-lnd`` builds into.

The cache key (lnd's version and a hash of ``devnet/go.mod``, ``go.sum``, tags and flags) is
computed by the script alone, asked with ``--print-dir``, so Python and bash never disagree.
``TASKHOLD_BIN_DIR`` overrides the lookup, e.g. for binaries built elsewhere.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from taskhold.devnet.control import BINARIES, DevnetError

__all__ = ["BUILD_SCRIPT", "find_bin_dir"]

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-lnd"


def find_bin_dir() -> Path:
    """The directory holding lnd, lncli, btcd and btcctl, or a :class:`DevnetError` saying how
    to get them."""
    override = os.environ.get("TASKHOLD_BIN_DIR")
    if override:
        bin_dir = Path(override)
    elif BUILD_SCRIPT.is_file():
        answer = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--print-dir"],
            capture_output=True,
            text=True,
            check=False,
        )
        if answer.returncode != 0:
            raise DevnetError(f"scripts/build-lnd --print-dir failed: {answer.stderr.strip()}")
        bin_dir = Path(answer.stdout.strip().splitlines()[-1])
    else:
        raise DevnetError(
            "no scripts/build-lnd next to this taskhold install; pass --bin-dir or set "
            "TASKHOLD_BIN_DIR to a directory with lnd, lncli, btcd and btcctl"
        )
    missing = [name for name in BINARIES if not (bin_dir / name).is_file()]
    if missing:
        raise DevnetError(
            f"{', '.join(missing)} missing in {bin_dir}; run scripts/build-lnd (a cold build "
            "takes several minutes) or pass --bin-dir"
        )
    return bin_dir
