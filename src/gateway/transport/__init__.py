"""The edge: the only room that speaks gRPC, protobuf and HTTP.

Servicers (inference, admin, governance, governor, monitoring) convert protobuf to domain
values in :mod:`~gateway.transport.converters`, call the core and convert back; errors become
statuses in one place (:mod:`~gateway.transport.status`); bearer tokens and roles are
checked by :mod:`~gateway.transport.auth` and :mod:`~gateway.transport.roles`; ``/metrics``
is served by :mod:`~gateway.transport.metrics_http`; the gRPC server, the HTTP server and
``/metrics`` are started and stopped as :mod:`~gateway.transport.faces`. The composition root
(:mod:`gateway.server`) wires these up; nothing below this room imports it.

This room has no face of its own: import what you use from the module that defines it.
"""
