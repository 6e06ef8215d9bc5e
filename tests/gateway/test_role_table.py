"""Every authenticated RPC has an explicit permission (a missing one fails closed to admin,
which would silently lock operators out of a new RPC)."""

from __future__ import annotations

from gateway._proto import admin_pb2, governance_pb2, governor_pb2, monitoring_pb2
from gateway.roles import METHOD_PERMISSIONS, Permission

PREDICT_AUTH = {"onnxgate.governor.v1.GovernorService/Feedback"}  # follows predict auth


def test_every_operator_rpc_has_a_permission():
    missing = []
    for module in (admin_pb2, governance_pb2, governor_pb2, monitoring_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"{service.full_name}/{method.name}"
                if path not in METHOD_PERMISSIONS and path not in PREDICT_AUTH:
                    missing.append(path)
    assert missing == []


def test_reads_never_need_more_than_read():
    for path, permission in METHOD_PERMISSIONS.items():
        name = path.rsplit("/", 1)[1]
        if name.startswith(("Get", "List")):
            assert permission is Permission.READ, path
