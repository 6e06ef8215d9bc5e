"""The operator console's pages: pure HTML and inline SVG built from plain data.

No web framework, no grpc, no database here: the HTTP face
(:mod:`gateway.transport.http.console`) reads the same APIs the CLI reads, hands their
answers to these functions as plain dicts, and serves the strings they return. No
scripts and no external files: every page works offline and prints as it looks.
"""

from __future__ import annotations

from gateway.console.pages import (
    audit_page,
    drift_page,
    governor_page,
    login_page,
    model_page,
    models_page,
    shadows_page,
)

__all__ = [
    "audit_page",
    "drift_page",
    "governor_page",
    "login_page",
    "model_page",
    "models_page",
    "shadows_page",
]
