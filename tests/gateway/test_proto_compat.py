"""Our grpc_service.proto is wire-compatible with the one tritonclient ships.

Every message we define that tritonclient also defines must give each of our fields the
same number, type, cardinality and (for messages/enums) the same referenced type, all the
way down through nested types; every method we serve must be one tritonclient calls, at the
same path with the same request and response types.
"""

from __future__ import annotations

import pytest
import tritonclient.grpc.model_config_pb2 as triton_config
import tritonclient.grpc.service_pb2 as triton_service
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway._proto import grpc_service_pb2 as ours

TRITON_FILES = (triton_service.DESCRIPTOR, triton_config.DESCRIPTOR)


def _triton_message(full_name: str) -> Descriptor | None:
    for file in TRITON_FILES:
        try:
            return file.pool.FindMessageTypeByName(full_name)
        except KeyError:
            continue
    return None


def _triton_enum(full_name: str) -> EnumDescriptor | None:
    for file in TRITON_FILES:
        try:
            return file.pool.FindEnumTypeByName(full_name)
        except KeyError:
            continue
    return None


def _field_signature(field: FieldDescriptor) -> tuple[object, ...]:
    return (
        field.number,
        field.type,
        field.is_repeated,
        field.message_type.full_name if field.message_type else None,
        field.enum_type.full_name if field.enum_type else None,
        field.containing_oneof.name if field.containing_oneof else None,
    )


def _problems(mine: Descriptor, theirs: Descriptor) -> list[str]:
    """Differences in ``mine``'s fields and nested types (recursively) from ``theirs``."""
    found: list[str] = []
    for field in mine.fields:
        other = theirs.fields_by_name.get(field.name)
        if other is None:
            found.append(f"{field.full_name}: tritonclient has no field '{field.name}'")
            continue
        if _field_signature(field) != _field_signature(other):
            found.append(
                f"{field.full_name}: ours {_field_signature(field)} != "
                f"tritonclient {_field_signature(other)}"
            )
    for nested in mine.nested_types:
        other_nested = theirs.nested_types_by_name.get(nested.name)
        if other_nested is None:
            found.append(f"{nested.full_name}: tritonclient has no nested type '{nested.name}'")
            continue
        if nested.GetOptions().map_entry != other_nested.GetOptions().map_entry:
            found.append(f"{nested.full_name}: map entry on one side only")
        found += _problems(nested, other_nested)
    return found


def _walk(descriptor: Descriptor):
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _walk(nested)


SHARED = [
    name for name in ours.DESCRIPTOR.message_types_by_name if _triton_message(f"inference.{name}")
]


def test_the_messages_clients_exchange_are_all_compared():
    assert {
        "ModelInferRequest",
        "ModelInferResponse",
        "InferTensorContents",
        "InferParameter",
        "ModelMetadataResponse",
        "ModelConfig",
        "ModelInput",
        "ModelOutput",
        "ModelConfigResponse",
        "ModelStatistics",
        "ModelStatisticsResponse",
        "RepositoryIndexResponse",
    } <= set(SHARED)


@pytest.mark.parametrize("name", SHARED)
def test_shared_message_fields_match_tritonclient(name):
    mine = ours.DESCRIPTOR.message_types_by_name[name]
    theirs = _triton_message(mine.full_name)
    assert theirs is not None
    assert _problems(mine, theirs) == []


def test_every_enum_we_reference_matches_tritonclient_values():
    enums = {
        field.enum_type
        for top in ours.DESCRIPTOR.message_types_by_name.values()
        for message in _walk(top)
        for field in message.fields
        if field.enum_type is not None
    } | set(ours.DESCRIPTOR.enum_types_by_name.values())
    assert {e.full_name for e in enums} >= {"inference.DataType"}
    for enum in enums:
        theirs = _triton_enum(enum.full_name)
        assert theirs is not None, enum.full_name
        mine = {v.name: v.number for v in enum.values}
        other = {v.name: v.number for v in theirs.values}
        assert mine.items() <= other.items(), enum.full_name


def test_served_methods_are_a_subset_of_tritonclients_service():
    mine = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert mine.full_name == theirs.full_name == "inference.GRPCInferenceService"
    assert len(mine.methods) >= 9
    for method in mine.methods:
        other = theirs.methods_by_name.get(method.name)
        assert other is not None, f"tritonclient does not call {method.name}"
        assert f"/{mine.full_name}/{method.name}" == f"/{theirs.full_name}/{other.name}"
        assert method.input_type.full_name == other.input_type.full_name
        assert method.output_type.full_name == other.output_type.full_name
        assert method.client_streaming == other.client_streaming
        assert method.server_streaming == other.server_streaming


def test_model_metadata_response_has_no_field_6():
    assert 6 not in ours.ModelMetadataResponse.DESCRIPTOR.fields_by_number


def test_a_full_infer_request_survives_the_wire_into_tritonclients_class():
    req = ours.ModelInferRequest(model_name="m", model_version="2", id="r")
    req.parameters["routing_key"].string_param = "k"
    req.parameters["n"].int64_param = -5
    tensor = req.inputs.add(name="x", datatype="INT64", shape=[2, 1])
    tensor.contents.int64_contents.extend([1, -(2**63)])
    tensor.parameters["p"].bool_param = True
    req.outputs.add(name="y").parameters["classification"].uint64_param = 3
    req.raw_input_contents.append(b"\x00\x01")

    theirs = triton_service.ModelInferRequest.FromString(req.SerializeToString())
    assert theirs.model_name == "m" and theirs.model_version == "2" and theirs.id == "r"
    assert theirs.parameters["routing_key"].string_param == "k"
    assert theirs.parameters["n"].int64_param == -5
    assert list(theirs.inputs[0].shape) == [2, 1]
    assert list(theirs.inputs[0].contents.int64_contents) == [1, -(2**63)]
    assert theirs.inputs[0].parameters["p"].bool_param is True
    assert theirs.outputs[0].parameters["classification"].uint64_param == 3
    assert list(theirs.raw_input_contents) == [b"\x00\x01"]
    # and back: nothing is lost as unknown fields on either side
    assert ours.ModelInferRequest.FromString(theirs.SerializeToString()) == req
