"""Running a browser test script (``web/browser/*.mjs``) against a real ``taskhold serve``.

The script drives Debian's Chromium through playwright-core and prints one JSON object; this
module runs it, fails the test on any uncaught page error or console error, and keeps the
screenshots under ``test-artifacts/screenshots/<test>/`` (``TASKHOLD_TEST_ARTIFACTS`` moves it).
Without Chromium or the bundles the tests skip, unless ``TASKHOLD_REQUIRE_BROWSER=1`` (set by
``scripts/test``) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from taskhold.web import BUNDLE_DIR

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
SCRIPTS = WEB / "browser"


def artifacts_dir() -> Path:
    """Where the browser tests keep their screenshots."""
    return Path(os.environ.get("TASKHOLD_TEST_ARTIFACTS", REPO / "test-artifacts"))


def _missing(message: str) -> None:
    """A skip, or a failure where the browser tests must run (TASKHOLD_REQUIRE_BROWSER=1)."""
    if os.environ.get("TASKHOLD_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def node_or_skip() -> str:
    """Node.js, with the npm packages (``scripts/build-web``), for the scripts run without a
    browser; a skip (a failure under TASKHOLD_REQUIRE_BROWSER=1) without them."""
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "nostr-tools").is_dir():
        _missing("needs node and web/node_modules (run scripts/build-web)")
    assert node is not None
    return node


def chromium_or_skip() -> str:
    """The Chromium binary; a skip (or a failure under TASKHOLD_REQUIRE_BROWSER=1) without it or
    without the built bundles and npm packages."""
    binary = os.environ.get("TASKHOLD_CHROMIUM") or shutil.which("chromium")
    missing = []
    if binary is None or not Path(binary).exists():
        missing.append("Chromium (Debian's chromium; scripts/services installs it)")
    if not (WEB / "node_modules" / "playwright-core").is_dir() or not BUNDLE_DIR.is_dir():
        missing.append("the npm packages and bundles (run scripts/build-web)")
    if missing:
        _missing("browser tests need " + " and ".join(missing))
    assert binary is not None
    return binary


def run_in_browser(
    script: str, base_url: str, test_name: str, timeout_s: float = 300, **inputs: Any
) -> dict[str, Any]:
    """Run ``web/browser/<script>`` against ``base_url`` with ``inputs``; its report.

    Any uncaught exception in the page, any console error and any failure the script caught
    fails the test here, with the script's stderr.
    """
    binary = chromium_or_skip()
    shots = artifacts_dir() / "screenshots" / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "TASKHOLD_CHROMIUM": binary,
        "TASKHOLD_BASE_URL": base_url,
        "TASKHOLD_SCREENSHOTS": str(shots),
        "TASKHOLD_BROWSER_ARGS": json.dumps(inputs),
    }
    ran = subprocess.run(
        ["node", str(SCRIPTS / script)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=env,
        cwd=WEB,
    )
    lines = ran.stdout.strip().splitlines()
    assert ran.returncode == 0 and lines, f"{script} exited {ran.returncode}:\n{ran.stderr}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert "failure" not in report, f"{script} failed in the page:\n{report['failure']}"
    assert report["page_errors"] == [], report["page_errors"]
    assert report["console_errors"] == [], report["console_errors"]
    return report
