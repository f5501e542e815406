"""The operator's moderation: blocking participant keys, taking tasks off the public board.

| module | job |
|---|---|
| ``moderator`` | block, unblock, delist, relist: rows, journal entry, signed list, one commit |
| ``gate`` | the write gate refusing a blocked key's writes (403 ``blocked_key``) but its exits |
| ``cli`` | ``taskhold moderate block|unblock|delist|relist`` |

A block never locks funds: the engine's releases, refunds and guardian need no request from
anyone, and the writes that only pay a participant what a task owes them (``EXIT_OPS``) stay
open to a blocked key. A delisted task leaves the board (``GET /v1/tasks`` without a participant
filter, and its kind-30402 listing is replaced by a bare one marked ``delisted``); its escrow
runs on, and its log entries are untouched. The state lives in the database, so every replica
sees it; the full list is published as one signed, replaceable event (kind ``kind_checkpoint``,
``d`` = ``taskhold-moderation``), which the auditor of the log leaves alone.
"""

from .gate import KeyBlocks
from .moderator import (
    EXIT_OPS,
    MODERATION_D,
    MODERATION_RULE,
    Moderator,
    moderation_document,
)

__all__ = [
    "EXIT_OPS",
    "MODERATION_D",
    "MODERATION_RULE",
    "KeyBlocks",
    "Moderator",
    "moderation_document",
]
