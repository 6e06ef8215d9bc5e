"""Registry error kinds carry their status name, and the one mapping reads it."""

from __future__ import annotations

import grpc

from gateway.transport.http.status import HTTP_STATUS
from gateway.transport.status import INTERNAL_MESSAGE, status_for
from registry import errors as reg


def _kinds() -> list[type[reg.RegistryError]]:
    found = [getattr(reg, name) for name in reg.__all__]
    return [k for k in found if isinstance(k, type) and issubclass(k, reg.RegistryError)]


def test_every_kind_names_a_grpc_status_the_http_face_maps() -> None:
    for kind in _kinds():
        assert kind.code in grpc.StatusCode.__members__, kind
        if kind is not reg.RegistryError:
            assert kind.code != "INTERNAL", kind
            assert kind.code in HTTP_STATUS or kind.code == "DATA_LOSS", kind  # DATA_LOSS: 500


def test_status_for_uses_the_kinds_code_and_hides_the_roots_message() -> None:
    code, message = status_for(reg.PermissionRefused("four-eyes", "someone else must approve"))
    assert code is grpc.StatusCode.PERMISSION_DENIED and "four-eyes" in message
    assert status_for(reg.StaleRevision("m", 1, 2))[0] is grpc.StatusCode.FAILED_PRECONDITION
    assert status_for(reg.RegistryError("secret")) == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
