"""Error names become gRPC statuses in one place, and every name is a real status."""

from __future__ import annotations

import subprocess
import sys
import typing

import grpc

from gateway import errors
from gateway.transport.status import INTERNAL_MESSAGE, grpc_code, status_for
from registry import errors as reg


def _subclasses(cls: type[errors.GatewayError]) -> list[type[errors.GatewayError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def test_every_status_name_is_a_grpc_status_code() -> None:
    for name in typing.get_args(errors.StatusName):
        assert grpc_code(name).name == name


def test_every_error_class_maps_to_its_named_status() -> None:
    for cls in _subclasses(errors.GatewayError):
        code, message = status_for(cls("field x: expected 2 dims"))
        assert code is grpc.StatusCode[cls.code]
        assert message == "field x: expected 2 dims"
    assert status_for(errors.InvalidArgument("x"))[0] is grpc.StatusCode.INVALID_ARGUMENT


def test_errors_module_does_not_import_grpc() -> None:
    """Not merely no ``grpc`` name in the module: importing it loads no grpc at all (in a
    fresh interpreter, since this one has grpc loaded by the other tests)."""
    code = "import sys, gateway.errors; print(sorted(m for m in sys.modules if 'grpc' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "grpc" not in vars(errors)


def test_registry_and_unknown_errors() -> None:
    assert status_for(reg.StaleRevision("m", 3, 4))[0] is grpc.StatusCode.FAILED_PRECONDITION
    assert status_for(RuntimeError("/secret/path")) == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
