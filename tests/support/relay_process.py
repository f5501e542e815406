"""A nostr-sdk ``LocalRelay`` in its own process, for the audit's fetch tests.

Run as ``python relay_process.py``: prints the relay's URL on one line, serves until its
standard input closes. A separate process keeps nostr-sdk's background threads (and the
shutdown crash nostr.md 1.3 warns about) away from the test interpreter. ``relay_processes``
starts such relays for a test; ``publish`` puts events on one over NIP-01.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import selectors
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nostr_sdk import LocalRelayBuilder, RateLimit, uniffi_set_event_loop
from websockets.asyncio.client import connect


@contextlib.contextmanager
def relay_processes() -> Iterator[Callable[[], str]]:
    """A function that starts a LocalRelay in its own process and returns its URL; every relay
    it started is stopped when the block ends."""
    processes: list[subprocess.Popen[str]] = []

    def start() -> str:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=30):
                raise RuntimeError("the LocalRelay did not start within 30 s")
        url = process.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:"), url
        return url

    try:
        yield start
    finally:
        for process in processes:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def publish(url: str, events: list[dict[str, Any]]) -> None:
    """Send each event to the relay at ``url`` and wait for its accepting ``OK``."""
    async with connect(url) as ws:
        for event in events:
            await ws.send(json.dumps(["EVENT", event]))
            while True:
                answer = json.loads(await ws.recv())
                if answer[0] == "OK" and answer[1] == event["id"]:
                    assert answer[2] is True, answer
                    break


async def main() -> None:
    uniffi_set_event_loop(asyncio.get_running_loop())
    relay = (
        LocalRelayBuilder()
        .addr("127.0.0.1")
        .rate_limit(RateLimit(max_reqs=10_000, notes_per_minute=1_000_000))
        .build()
    )
    await relay.run()
    print(await relay.url(), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    relay.shutdown()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    asyncio.run(main())
