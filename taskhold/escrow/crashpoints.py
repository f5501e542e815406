"""Where a money path may crash: every named point the escrow's fault hook is called at.

Each point sits between two steps that are not one atomic change: a node call and the database
write that records it, or two node calls. A test pins this catalogue to the code (every name is
called exactly once), and the crash harness kills a real ``taskhold serve`` at each of them with
``TASKHOLD_CRASH_AT=<point>[:<nth>]`` to prove a restart converges: nobody paid twice, no escrow
stuck, no gap in the public log.
"""

from __future__ import annotations

import os
import signal

from .context import FaultHook

__all__ = ["CRASH_POINTS", "crash_hook", "parse_crash_at"]

CRASH_POINTS: dict[str, str] = {
    # funding
    "after_hold_invoice": "the node made the hold invoice; the task does not record it yet",
    "after_htlc_accepted": "the node reported the employer's HTLC held; FUNDED not recorded yet",
    # release
    "after_payout_row": "the payout row is written; the worker is not paid yet",
    "after_payout": "the worker's payment succeeded; the hold invoice is not settled yet",
    "after_settle": "the hold invoice is settled; the release is not recorded yet",
    "after_payout_failure": "a failed payout attempt is recorded; the next is not made yet",
    # a split: the worker's share, the employer's, then the settle
    "after_worker_share_row": "the worker share's payment row is written; it is not paid yet",
    "after_worker_share": "the worker's share is paid; it is not recorded in the log yet",
    "after_worker_share_failure": "a failed worker-share attempt is recorded; no retry made yet",
    "after_employer_share_row": "the employer share's row is written; it is not paid yet",
    "after_employer_share": "the employer's share is paid; the hold is not settled yet",
    "after_employer_share_failure": "a failed employer-share attempt is recorded; no retry yet",
    "after_split_settle": "the split's hold is settled; the split is not recorded complete yet",
    # refund
    "after_cancel": "the hold invoice is cancelled; the refund is not recorded yet",
    # deposits: locking, returning, and paying a forfeited one out
    "after_deposit_invoice": "the node made the deposit's invoice; the task does not record it",
    "after_deposit_htlc_accepted": "the deposit's HTLC is held; HELD not recorded yet",
    "after_deposit_cancel": "the deposit's invoice is cancelled; the return is not recorded yet",
    "after_deposit_payout_row": "the forfeit's payment row is written; it is not paid yet",
    "after_deposit_payout": "the forfeit's payment succeeded; its invoice is not settled yet",
    "after_deposit_settle": "the forfeited deposit is settled; the payout is not recorded yet",
    "after_deposit_payout_failure": "a failed forfeit payment is recorded; no retry made yet",
    # milestone series
    "after_milestone_invoice": "the node made a waiting milestone's invoice; it is not recorded",
    # renewal: the next funding round of a task that outlasts one hold
    "after_renewal_invoice": "the node made the renewal's hold invoice; it is not recorded yet",
    "after_renewal_htlc_accepted": "the renewal's HTLC is held; Renewed not recorded yet",
    "after_round_cancel": "a round other than the current one is cancelled; not recorded yet",
}
"""Point name -> what is done and what is not yet when it is reached."""


def parse_crash_at(spec: str) -> tuple[str, int]:
    """``point`` or ``point:nth`` -> (point, nth); a point outside the catalogue is refused,
    since a misspelt one would never fire and a crash test would pass without crashing."""
    point, _, nth_text = spec.partition(":")
    if point not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(CRASH_POINTS)}")
    try:
        nth = int(nth_text) if nth_text else 1
    except ValueError:
        raise ValueError(f"crash point count must be a whole number, got {nth_text!r}") from None
    if nth < 1:
        raise ValueError(f"crash point count must be at least 1, got {nth}")
    return point, nth


def crash_hook(spec: str) -> FaultHook:
    """A fault hook that kills this process with SIGKILL the ``nth`` time ``point`` is reached:
    no cleanup, no flush, no ``finally``, as a power cut or the OOM killer would."""
    point, nth = parse_crash_at(spec)
    reached = 0

    async def hook(at: str) -> None:
        nonlocal reached
        if at != point:
            return
        reached += 1
        if reached == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
