"""Telling people: NIP-17 private messages to whoever a task waits on, and signed webhooks.

| module | job |
|---|---|
| ``notices`` | the ``LogWriter`` hook: each new wait on a participant becomes a gift wrap, once |
| ``webhooks`` | the operator's registered webhook URLs (the ``webhooks`` table) |
| ``delivery`` | the webhook worker: each log entry, in order, signed, to every webhook |
| ``wiring`` | building these once, for the composition root |
| ``cli`` | ``taskhold webhooks add|list|remove`` |

Neither carries anything private: a notification names the task, the action and its deadline;
a webhook gets the public log entries, which the relays have too.
"""

from .delivery import WebhookDeliverer
from .notices import Notifier, notice_text

__all__ = ["Notifier", "WebhookDeliverer", "notice_text"]
