"""The quick reading of who signed a usual log (``checks._one_key_log``: every entry placed,
all by the operator, no rotation) keeps what the walk over the key chain keeps, in the same
order, with the same keys and findings, for any log; a log it does not fit is left to the walk.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from taskhold.audit import checks
from taskhold.audit.entry import KEY_ROTATED, Entry
from taskhold.audit.findings import Finding

OPERATOR, OTHER, NEXT = ("a" * 64, "b" * 64, "c" * 64)


def _hex(number: int) -> str:
    return hashlib.sha256(str(number).encode()).hexdigest()


events_drawn = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=6),  # gseq
        st.sampled_from([OPERATOR] * 6 + [OTHER, NEXT]),  # author
        st.sampled_from(["TaskCreated"] * 6 + [KEY_ROTATED]),  # op
        st.sampled_from([True] * 6 + [False]),  # placed by parse_entry
    ),
    max_size=12,
)


def _log(drawn: list[tuple[int, str, str, bool]]) -> tuple[list[Any], dict[str, Entry | None]]:
    events, read = [], {}
    for number, (gseq, author, op, placed) in enumerate(drawn):
        event_id = _hex(number)
        tags = [["gseq", str(gseq)], ["op", op], ["new_key", NEXT]]
        events.append({"id": event_id, "pubkey": author, "tags": tags})
        values = {"new_key": NEXT} if op == KEY_ROTATED else {}
        entry = Entry(event_id, 0, gseq, "t", 1, op, None, None, values)
        read[event_id] = entry if placed else None
    return events, read


def _walked(events: list[Any], read: dict[str, Entry | None]) -> tuple[Any, ...]:
    findings: set[Finding] = set()
    kept, keys = checks._walk_key_chain(events, OPERATOR, findings, read)
    return [event["id"] for event in kept], keys, findings


@settings(max_examples=300, deadline=None)
@given(events_drawn)
def test_the_quick_reading_keeps_what_the_walk_keeps(drawn: list[Any]) -> None:
    events, read = _log(drawn)
    findings: set[Finding] = set()
    kept, keys = checks._by_current_key(events, OPERATOR, findings, read)
    assert ([event["id"] for event in kept], keys, findings) == _walked(events, read)


@given(st.permutations([*range(8), 3, 5]))
def test_a_usual_log_out_of_order_is_read_quickly_and_in_the_walks_order(
    gseqs: list[int],
) -> None:
    """Entries given in any order, two gseqs signed twice: the quick reading applies (it is
    not None) and orders them as the walk does, those of one gseq as they came."""
    events, read = _log([(gseq, OPERATOR, "TaskCreated", True) for gseq in gseqs])
    quick = checks._one_key_log(events, OPERATOR, read)
    assert quick is not None
    assert ([event["id"] for event in quick], (OPERATOR,), set()) == _walked(events, read)


def test_a_log_the_quick_reading_does_not_fit_is_left_to_the_walk() -> None:
    for drawn in (
        [(0, OPERATOR, "TaskCreated", True), (1, OTHER, "TaskCreated", True)],
        [(0, OPERATOR, KEY_ROTATED, True), (1, NEXT, "TaskCreated", True)],
        [(0, OPERATOR, "TaskCreated", True), (1, OPERATOR, "TaskCreated", False)],
    ):
        events, read = _log(drawn)
        assert checks._one_key_log(events, OPERATOR, read) is None
