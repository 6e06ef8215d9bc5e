"""OpenTelemetry tracing (the ``otel`` extra): traces made off the request path, sent by OTLP.

:mod:`gateway.traces` (no opentelemetry) is what the faces, the data plane, the batcher,
the shadow scorer and the governor stamp; here :mod:`.spans` turns finished traces into
OpenTelemetry spans and :mod:`.export` sends them over OTLP/HTTP from its own bounded queue
(drops counted). :func:`build_tracing` makes it all from settings; nothing here is
imported, and opentelemetry never loaded, while ``otel_endpoint`` is unset.

This room has no face of its own: import what you use from the module that defines it.
"""
