"""A nostr-sdk ``LocalRelay`` in its own process, for the audit's fetch tests.

Run as ``python relay_process.py``: prints the relay's URL on one line, serves until its
standard input closes. A separate process keeps nostr-sdk's background threads (and the
shutdown crash nostr.md 1.3 warns about) away from the test interpreter.
"""

from __future__ import annotations

import asyncio
import sys

from nostr_sdk import LocalRelayBuilder, RateLimit, uniffi_set_event_loop


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
