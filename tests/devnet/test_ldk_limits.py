"""LDK's hold-window limits are enforced at start and published, never hidden.

LDK fails a held HTLC back 39 blocks before it expires (``HTLC_FAIL_BACK_BUFFER``), issues no
hold invoice under a final delta of 42, and refuses an HTLC more than 2016 blocks out. A taskhold
that kept lnd's numbers would let LDK cancel a hold before the guardian acts (a release racing
that cancel pays the worker from the operator's own money), or promise holds the node refuses.
So ``serve --lightning ldk`` takes the node's numbers, the terms state them, and task creation
sizes holds (or refuses, or plans renewals) within them.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from support.devnet_network import get_ldk_devnet

from taskhold.api.application import create_api
from taskhold.client import TaskholdAPIError, TaskholdClient
from taskhold.lightning.ldk import (
    HTLC_FAIL_BACK_BUFFER,
    MAX_FINAL_CLTV_EXPIRY_DELTA,
    MIN_FINAL_CLTV_EXPIRY_DELTA,
)
from taskhold.nostr import NostrKeys
from taskhold.services import build_services
from taskhold.settings import Settings

pytestmark = [pytest.mark.devnet, pytest.mark.ldk]


def _settings(data_dir: Path, **extra: object) -> Settings:
    devnet = get_ldk_devnet()
    return Settings(
        data_dir=data_dir,
        lightning="ldk",
        lnd_connection_file=devnet.connection_file,
        **extra,  # type: ignore[arg-type]
    )


async def test_serving_on_ldk_takes_the_nodes_limits_and_publishes_them(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, hold_expiry_delta=12, min_cltv_expiry_delta=40, max_cltv_expiry_delta=2100
    )
    services = await build_services(settings)
    try:
        applied = services.settings
        assert (applied.hold_expiry_delta, applied.guard_blocks) == (
            HTLC_FAIL_BACK_BUFFER,
            HTLC_FAIL_BACK_BUFFER + applied.guardian_margin_blocks,
        )
        assert applied.min_cltv_expiry_delta == MIN_FINAL_CLTV_EXPIRY_DELTA
        assert applied.max_cltv_expiry_delta == MAX_FINAL_CLTV_EXPIRY_DELTA
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_api(services, run_engine=False)),
            base_url="http://taskhold.test",
        ) as http:
            client = TaskholdClient("http://taskhold.test", NostrKeys.generate(), http=http)
            terms = (await client.info())["renewal"]
        blocks = MAX_FINAL_CLTV_EXPIRY_DELTA - HTLC_FAIL_BACK_BUFFER
        assert terms["hold_window"] == {
            "ldk": {"blocks": blocks, "seconds": blocks * applied.block_time_s}
        }
        assert terms["node_limits"] == {
            "backend": "ldk",
            "auto_cancel_blocks": HTLC_FAIL_BACK_BUFFER,
            "min_cltv_expiry_delta": MIN_FINAL_CLTV_EXPIRY_DELTA,
            "max_cltv_expiry_delta": MAX_FINAL_CLTV_EXPIRY_DELTA,
        }
    finally:
        await services.close()


async def test_a_task_longer_than_ldk_can_hold_is_refused_naming_the_limit(
    tmp_path: Path,
) -> None:
    services = await build_services(_settings(tmp_path, max_task_duration_s=0))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_api(services, run_engine=False)),
            base_url="http://taskhold.test",
        ) as http:
            employer = TaskholdClient("http://taskhold.test", NostrKeys.generate(), http=http)
            fits = await employer.create_task("fits", "", 100_000, int(time.time()) + 3600)
            with pytest.raises(TaskholdAPIError) as refused:
                await employer.create_task("long", "", 100_000, int(time.time()) + 30 * 86_400)
        assert fits["renewal_needed"] is False
        assert refused.value.status == 422
        assert refused.value.code == "hold_too_long"
        assert str(services.settings.max_cltv_expiry_delta) in refused.value.detail
    finally:
        await services.close()
