"""What a client may send in one request, checked once, where the request is decoded.

Every text field a client sends (a request id, a model or tensor name, a routing key, a
parameter) becomes a log argument, a dictionary key, a kept record, sometimes an error
message; a few become metric labels. So each is checked at decode, on every face, against
the same limits: valid Unicode that UTF-8 can encode (JSON may carry a lone UTF-16 surrogate
such as ``"\\ud800"``, which no UTF-8 encoder accepts: left in, it fails whatever touches it
later, a batch of other clients' requests included) and a bounded length in UTF-8 bytes.
A field over its limit is refused with ``INVALID_ARGUMENT`` (HTTP 400) naming the field.

The limits (README, "Faults and hostile input")::

    request id                          256 bytes
    model name, version                 256 bytes
    input / output tensor name          256 bytes
    routing key, segment                256 bytes
    parameter name                      256 bytes
    parameter string value            4,096 bytes
    parameters per request (or tensor)   64
    tensor rank (dimensions)             32
    JSON nesting                         deeper than Python's parser allows is refused

Pure: no wire format, no numpy; both faces and Explain import it.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import InvalidArgument
from gateway.messages import quoted

__all__ = [
    "MAX_DIMS",
    "MAX_ID_BYTES",
    "MAX_KEY_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PARAMETERS",
    "MAX_PARAM_VALUE_BYTES",
    "check_parameters",
    "check_text",
    "unencodable",
]

MAX_ID_BYTES = 256
MAX_NAME_BYTES = 256
MAX_KEY_BYTES = 256
MAX_PARAM_VALUE_BYTES = 4096
MAX_PARAMETERS = 64
MAX_DIMS = 32
"""numpy 1.x allows 32 dimensions and 2.x 64; no served model has more than a handful."""


def unencodable(text: str) -> int | None:
    """Index of the first character UTF-8 cannot encode (a lone surrogate), else None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_text(field: str, value: str, limit: int) -> str:
    """``value`` when it is encodable text of at most ``limit`` UTF-8 bytes; else refuse it.

    ``field`` names the field in the refusal (``id``, ``inputs[2].name``, ...); the value
    itself is never echoed when it is the problem (it may be huge, or unprintable).
    """
    # NOTE: len(str) <= limit // 4 cannot exceed the limit in UTF-8 (4 bytes at most per
    # character); only longer strings, and those with surrogates, need the encode.
    if len(value) <= limit // 4 and value.isascii():
        return value
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{field}: character {exc.start} is a lone UTF-16 surrogate, not valid Unicode text"
        ) from None
    if size > limit:
        raise InvalidArgument(f"{field}: {size:,} bytes is longer than the limit of {limit:,}")
    return value


def check_parameters(where: str, params: Mapping[str, object]) -> None:
    """Parameter names and string values within their limits, and not too many of them."""
    if len(params) > MAX_PARAMETERS:
        raise InvalidArgument(
            f"{where}: {len(params):,} parameters is more than the limit of {MAX_PARAMETERS}"
        )
    for key, value in params.items():
        check_text(f"{where} name", key, MAX_KEY_BYTES)
        if isinstance(value, str):
            check_text(f"{where}.{quoted(key)}", value, MAX_PARAM_VALUE_BYTES)
