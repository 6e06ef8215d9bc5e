"""The request journal: inputs kept by id, its settled lookup, and the byte bound it shares."""

from __future__ import annotations

import asyncio

import numpy as np

from gateway.governor.feedback import FeedbackStore, LabelOutcome
from gateway.governor.journal import MAX_INPUT_BYTES, RequestJournal
from gateway.governor.rollout import FeedbackPolicy
from gateway.serving.taps import TapRecord
from registry.signature import Signature


def _tap(request_id: str, nbytes: int = 64, version: str = "1") -> TapRecord:
    x = {"x": np.ones((1, nbytes // 4), np.float32)}
    return TapRecord("m", version, "champion", request_id, {}, x, {"label": np.array([1])},
                     Signature((), ()))  # fmt: skip


def test_keeps_a_copy_by_id_and_refuses_large_requests() -> None:
    journal = RequestJournal()
    record = _tap("a")
    journal.observe(record)
    journal.observe(_tap(""))  # no id: nothing to find it by
    journal.observe(_tap("big", MAX_INPUT_BYTES + 4))
    found = journal.inputs_of("m", "a")
    assert found is not None and found[0] == "1"
    assert found[1]["x"] is not record.inputs["x"]  # a copy, not the request's buffer
    assert len(journal) == 1 and journal.inputs_of("m", "big") is None


def test_lookup_settles_the_taps_first() -> None:
    journal = RequestJournal()

    async def settle() -> bool:
        journal.observe(_tap("late"))  # the tap queue delivering what was in it
        return True

    journal.settle = settle
    found = asyncio.run(journal.lookup("m", "late"))
    assert found is not None and found[0] == "1"


def test_kept_inputs_share_the_feedback_byte_bound_and_give_way_first() -> None:
    store = FeedbackStore(max_bytes=400_000, keep_inputs=True)
    store.configure("m", FeedbackPolicy())
    for i in range(200):
        store.observe(_tap(f"id{i}", 4096))
        assert store.bytes <= store.max_bytes
        assert store.journal is not None and store.journal.bytes <= store.max_bytes // 2
    # Predictions were kept even though inputs filled their share: labels still join.
    assert store.add_label("m", "id199", label="1") is LabelOutcome.JOINED
    assert store.add_label("m", "id0", label="1") is LabelOutcome.JOINED
    assert store.inputs_of("m", "id199") is not None
    assert store.inputs_of("m", "id0") is None  # the oldest inputs went first


def test_no_journal_without_keep_inputs() -> None:
    store = FeedbackStore()
    store.observe(_tap("a"))
    assert store.journal is None and store.inputs_of("m", "a") is None and store.bytes == 0
