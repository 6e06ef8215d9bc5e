"""The Prometheus ``/metrics`` HTTP endpoint, served from a daemon thread."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

__all__ = ["start_metrics_server"]


def start_metrics_server(
    registry: CollectorRegistry, host: str, port: int
) -> tuple[WSGIServer, int]:
    """Serve ``registry`` on ``host:port`` (0 = any free port); return server and port."""
    app = make_wsgi_app(registry)
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    # A short poll interval keeps shutdown() quick (it waits for the loop to notice).
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="onnxgate-metrics",
        daemon=True,
    )
    thread.start()
    return server, server.server_port
