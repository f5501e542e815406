"""The database going away under a running API: requests get a 503 ``database_unavailable``
problem to retry (not a 500 internal error), and the same stack answers again once the server
is back, its pool reconnecting by itself. The cluster is the test's own (a crash of the shared
server would break every other test)."""

from __future__ import annotations

from pathlib import Path

from support.private_postgres import PrivatePostgres, private_postgres
from support.stacks import close_stack, open_stack, stack_settings
from support.task_flows import created

__all__ = ["private_postgres"]  # the fixture


async def test_a_database_crash_is_a_503_until_it_is_back(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    stack = await open_stack(stack_settings(tmp_path, private_postgres.url))
    try:
        task = await created(stack, stack.client())
        path = f"/v1/tasks/{task['task_id']}"
        assert (await stack.http.get(path)).status_code == 200

        private_postgres.stop("immediate")
        for _ in range(2):  # the pooled connection that died, then a new one that is refused
            answer = await stack.http.get(path)
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == "database_unavailable"

        private_postgres.start()
        answer = await stack.http.get(path)
        assert answer.status_code == 200
        assert answer.json()["state"] == task["state"]
    finally:
        await close_stack(stack)
