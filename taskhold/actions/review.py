"""review: a party of a PAID or REFUNDED task rates the other, with the operator's receipt."""

from __future__ import annotations

from taskhold.envelope import SignedRequest
from taskhold.errors import Conflict, NotFound, RefusalCode
from taskhold.reputation.reviews import ReviewContent, review_view
from taskhold.store import Tx
from taskhold.tasks import Task

from .content import parse_content
from .pipeline import Outcome, WriteContext

__all__ = ["review"]


async def review(ctx: WriteContext, tx: Tx, request: SignedRequest, task: Task | None) -> Outcome:
    if ctx.reputation is None:
        raise Conflict("this taskhold does not take reviews", code=RefusalCode.REVIEWS_DISABLED)
    if task is None:
        raise NotFound("a review needs a task")
    body = parse_content(ReviewContent, request.content)
    row = await ctx.reputation.reviews.accept(tx.session, task, request, body)
    return Outcome(task, status=201, extra={"review": review_view(row)})
