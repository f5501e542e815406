"""The task list pages by (created_at, task_id): tasks made in the same second as a page's last
one are neither skipped nor repeated at the boundary, which a cursor of seconds alone did."""

from __future__ import annotations

import time
from typing import Any

from support.stacks import Stack
from support.task_flows import created


async def _pages(stack: Stack, limit: int, *, with_id: bool) -> list[list[str]]:
    pages: list[list[str]] = []
    query: dict[str, Any] = {"limit": limit}
    while True:
        answer = (await stack.http.get("/v1/tasks", params=query)).json()
        pages.append([task["task_id"] for task in answer["tasks"]])
        if answer["next_before"] is None:
            return pages
        query = {"limit": limit, "before": answer["next_before"]}
        if with_id:
            query["before_id"] = answer["next_before_id"]


async def test_tasks_of_one_second_are_paged_each_once(stack: Stack) -> None:
    second = int(time.time())
    stack.services.engine.ctx.clock = lambda: second  # every task is made in this second
    employer = stack.client()
    made = [(await created(stack, employer, title=f"Task {n}"))["task_id"] for n in range(5)]

    pages = await _pages(stack, 2, with_id=True)
    listed = [task_id for page in pages for task_id in page]
    assert listed == sorted(made)  # one second: ties go by task id
    assert [len(page) for page in pages] == [2, 2, 1]

    # the seconds-only cursor, still accepted, skips the rest of the boundary's second
    assert await _pages(stack, 2, with_id=False) == [sorted(made)[:2], []]


async def test_a_malformed_task_id_cursor_is_a_clear_422(stack: Stack) -> None:
    response = await stack.http.get("/v1/tasks", params={"before": 1, "before_id": "zz"})
    assert response.status_code == 422
