"""``taskhold rebuild``: the database rebuilt from the public log, its source of truth.

| module | job |
|---|---|
| ``replay`` | verify every entry and replay it through the task reducer into a fresh database |
| ``cli`` | fetch the log (and review receipts and records) from relays, then replay it |
"""

from .replay import LogRejected, RebuildReport, RejectedEvent, rebuild_from_entries

__all__ = ["LogRejected", "RebuildReport", "RejectedEvent", "rebuild_from_entries"]
