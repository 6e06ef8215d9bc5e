"""The data plane: route, validate, batch and run one request on a loaded version.

Every face calls :class:`DataPlane` (:mod:`~gateway.serving.dataplane`) and, for the
protocol's reads (ready, metadata, config, statistics, index), :class:`Reads`;
:mod:`~gateway.serving.catalog` keeps the live routing tables (:mod:`~gateway.serving.tables`)
in step with the registry (:mod:`~gateway.serving.watch`) over the loaded versions
(:mod:`~gateway.serving.loader`, which audits load failures),
:mod:`~gateway.serving.routing` picks a version (pure), :mod:`~gateway.serving.runtime`
wraps one ``InferenceSession``, :mod:`~gateway.serving.batching` groups requests, and
:mod:`~gateway.serving.taps` feeds served requests to monitoring and the governor off the
request path. No grpc, no protobuf: the transport converts at the edge.

This room has no face of its own: import what you use from the module that defines it.
"""
