"""Client-facing error text that stays small whatever the client sent.

Error messages echo what a request named (a model, an input, a datatype) so that the caller
sees what was wrong. A gRPC status message travels in the ``grpc-message`` trailer,
percent-encoded, and a trailer block over the client's metadata limit (16 KiB by default) is
dropped: the caller then sees ``RESOURCE_EXHAUSTED: Stream removed`` instead of the real
status. So every echo is capped where it is made (:func:`quoted`, :func:`name_list`) and the
whole message once more where it leaves (:func:`cap_message`, in the status mapping).

Pure text: no grpc import, so the serving core may use it as well as the transport.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Iterable

__all__ = [
    "MAX_LISTED",
    "MAX_MESSAGE_BYTES",
    "MAX_NAME",
    "cap_message",
    "name_list",
    "quoted",
    "short",
]

MAX_NAME = 64
"""Characters of one echoed name kept before it is cut with an ellipsis."""

MAX_LISTED = 8
"""Names listed before the rest are counted ("… and 4,998 more")."""

MAX_MESSAGE_BYTES = 4096
"""Bytes a whole message may take on the wire, percent-encoded: a quarter of the limit."""

_ELLIPSIS = "…"


def short(name: str, limit: int = MAX_NAME) -> str:
    """``name``, cut to ``limit`` characters (the last one an ellipsis) when longer."""
    return name if len(name) <= limit else name[: max(limit - 1, 0)] + _ELLIPSIS


def quoted(name: str, limit: int = MAX_NAME) -> str:
    """``'name'`` as messages echo it, cut by :func:`short`."""
    return f"'{short(name, limit)}'"


def name_list(names: Iterable[str], limit: int = MAX_LISTED) -> str:
    """``'a', 'b', … and 4,998 more``: at most ``limit`` quoted names, the rest counted."""
    items = names if isinstance(names, Collection) else list(names)
    shown: list[str] = []
    for name in items:
        if len(shown) == limit:
            break
        shown.append(quoted(name))
    rest = len(items) - len(shown)
    if rest > 0:
        shown.append(f"{_ELLIPSIS} and {rest:,} more")
    return ", ".join(shown)


def _wire_bytes(char: str) -> int:
    # gRPC percent-encodes every byte of grpc-message outside printable ASCII, and '%'.
    if " " <= char <= "~" and char != "%":
        return 1
    return 3 * len(char.encode("utf-8", "surrogatepass"))


def cap_message(text: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """``text`` if it fits ``limit`` bytes on the wire, else its head and a note saying so.

    The last line of defence: a message built from a capped echo is already far smaller.
    """
    if len(text) * 12 <= limit:  # no character costs more than 12 bytes percent-encoded
        return text
    costs = [_wire_bytes(c) for c in text]
    if sum(costs) <= limit:
        return text
    note = f" {_ELLIPSIS} (message cut, {len(text):,} characters)"
    budget = limit - sum(_wire_bytes(c) for c in note)
    end = bisect.bisect_right(list(itertools.accumulate(costs)), budget)
    return text[:end] + note
