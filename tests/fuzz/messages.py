"""A Hypothesis strategy for any protobuf message, built from its descriptor.

Every field of the message is drawn (and of nested messages, to a small depth): strings
from names the tests' models use mixed with any text, numbers over their whole range with
NaN and infinities for doubles, maps and repeated fields of a few entries. So a field added
to an operator API's ``.proto`` is fuzzed without a change here.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

WORDS = ["m", "1", "2", "3", "champion", "challenger", "canary", "anchor", "x", ""]
texts = st.one_of(st.sampled_from(WORDS), st.text(max_size=10))

_INTS = {
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
}


_UNSIGNED = {
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED64,
}


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INTS:
        whole = _INTS[kind]
        small = st.integers(0 if kind in _UNSIGNED else -3, 10)
        return st.one_of(small, whole)
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return texts
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=16)
    if kind == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return _fields(field.message_type, depth + 1)
    raise NotImplementedError(field.full_name)


def _fields(descriptor: Descriptor, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword values for the message's fields (each field present or not)."""
    parts: dict[str, st.SearchStrategy[Any]] = {}
    if depth > 2:
        return st.just({})
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_f, value_f = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            parts[field.name] = st.dictionaries(
                _scalar(key_f, depth), _scalar(value_f, depth), max_size=3
            )
        elif field.is_repeated:
            parts[field.name] = st.lists(_scalar(field, depth), max_size=3)
        else:
            parts[field.name] = _scalar(field, depth)
    return st.fixed_dictionaries({}, optional=parts)


def messages(message: type[Message]) -> st.SearchStrategy[Message]:
    """Any ``message``, every field drawn."""
    return _fields(message.DESCRIPTOR, 0).map(lambda kw: message(**kw))
