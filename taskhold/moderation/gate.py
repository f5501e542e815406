"""The write gate that refuses a blocked key: 403 ``blocked_key``, read from the database so
every replica refuses the same keys. Its exits (``EXIT_OPS``) pass, so a block never keeps the
key's money in a task."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from taskhold.envelope import SignedRequest
from taskhold.errors import Forbidden, RefusalCode
from taskhold.store import Tx
from taskhold.store.direct import DirectStatement, fetch
from taskhold.store.models import BlockedKeyRow

from .moderator import EXIT_OPS

__all__ = ["KeyBlocks"]

_REASON = DirectStatement(
    select(BlockedKeyRow.reason).where(BlockedKeyRow.pubkey == bindparam("pubkey")),
    reads_mapped=True,
)
"""Built once, run on the driver (``taskhold.store.direct``): every write but an exit reads
it."""


class KeyBlocks:
    """A ``TxGate`` (``taskhold.actions.pipeline``): read in the write's own transaction, after
    the signature verified, so nobody is refused (or learns whether a key is blocked) by an
    event they could not sign, and a write costs one indexed read more, not a transaction."""

    async def admit_in(self, tx: Tx, request: SignedRequest) -> None:
        if request.op in EXIT_OPS:
            return
        found = await fetch(tx.session, _REASON, {"pubkey": request.pubkey})
        if found:
            (reason,) = found[0]
            raise Forbidden(
                f"this operator blocked key {request.pubkey}: {reason}. Payout, refund and"
                " deposit-payout invoices and the cancel of your own task are still taken",
                code=RefusalCode.BLOCKED_KEY,
            )
