"""The Payment Coordinator: paying out what taskhold holds, and giving it back.

- :mod:`.held`: pay-then-settle and cancel, once, over :class:`~.held.HeldFunds` (a task's
  reward, a deposit, and every later kind of payout);
- :mod:`.paying`: one payment, at most once, followed across crashes;
- :mod:`.rules`: what every payout obeys (bounded by its hold: CLTV limit, fee cap, hashes);
- :mod:`.invoices`: decoding and checking the payee's BOLT11 invoice.

The escrow engine decides when; this package does the Lightning steps. It never imports the
engine: it is handed a :class:`~.context.PaymentContext` and a kind's :class:`~.held.PayoutBook`.
"""
