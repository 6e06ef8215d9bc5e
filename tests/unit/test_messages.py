"""Echoed names and whole messages stay small on the wire, whatever the client sent."""

from __future__ import annotations

import urllib.parse

import pytest

from gateway.messages import MAX_MESSAGE_BYTES, cap_message, name_list, quoted, short

# gRPC percent-encodes grpc-message bytes outside printable ASCII, and '%'.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _wire(text: str) -> int:
    return len(urllib.parse.quote(text, safe=_SAFE))


def test_short_names_pass_and_long_ones_are_cut() -> None:
    assert quoted("x") == "'x'"
    cut = short("n" * 10_000)
    assert len(cut) == 64 and cut.endswith("…")


def test_name_list_counts_what_it_does_not_show() -> None:
    assert name_list(["a", "b"]) == "'a', 'b'"
    text = name_list(f"in{i}" for i in range(5000))
    assert text.startswith("'in0', 'in1'") and text.endswith("… and 4,992 more")


@pytest.mark.parametrize(
    "text", ["x" * 100_000, "é" * 50_000, "%" * 10_000, "😀" * 5_000, "ok " * 20_000]
)
def test_cap_message_fits_the_wire_budget_and_says_it_cut(text: str) -> None:
    capped = cap_message(text)
    assert _wire(capped) <= MAX_MESSAGE_BYTES
    assert capped.endswith(f"(message cut, {len(text):,} characters)")
    assert text.startswith(capped.split(" … (message cut")[0])


def test_cap_message_leaves_a_fitting_message_alone() -> None:
    text = "input 'x': shape [2, 5] does not match the model's [-1, 4] (-1 = any)"
    assert cap_message(text) is text
    assert cap_message("é" * 600) == "é" * 600  # 3,600 bytes encoded, past the fast path
