"""The faster copy into nostr-sdk's Rust buffers hands Rust the same bytes as the bindings'
own byte-by-byte loop: events round-trip unchanged through it, long and non-ASCII ones too."""

from __future__ import annotations

import json

import pytest

from taskhold.nostr import NostrKeys, sdk_buffers


def _round_trip(event: dict[str, object]) -> dict[str, object]:
    from nostr_sdk import Event

    parsed = Event.from_json(json.dumps(event, ensure_ascii=False))
    assert parsed.verify()
    result: dict[str, object] = json.loads(parsed.as_json())
    return result


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 5_000, 70_000])
def test_events_round_trip_unchanged_through_the_fast_copy(size: int) -> None:
    assert sdk_buffers.installed()
    content = ('é🎉\u2028"\\' * size)[:size]
    event = NostrKeys.generate().sign_event(3910, content, [["t", "ü" * 40]], 1_760_000_000)

    assert _round_trip(event) == event


def test_the_fast_copy_gives_what_the_bindings_own_copy_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = NostrKeys.generate().sign_event(3910, "ä" * 3000, [["op", "x"]], 1_760_000_000)
    fast = _round_trip(event)
    builder = sdk_buffers._BUILDER
    monkeypatch.setattr(builder, "write", sdk_buffers._ORIGINAL_WRITE)

    assert _round_trip(event) == fast == event
