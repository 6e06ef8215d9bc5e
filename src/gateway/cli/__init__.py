"""The ``onnxgate`` command line: one parser, one module per command family.

:mod:`~gateway.cli.parser` builds the parser from the families and dispatches (:func:`main`,
also ``python -m gateway.cli`` and the ``onnxgate`` script). Families: ``inference`` (serve,
infer, bench), ``models`` (the registry), ``traffic`` (weights, promote, rollback, shadows),
``monitoring`` (drift, shadow report), ``governor`` (feedback, governor, rollout policy),
``governance`` (approvals, governance policy, lineage) and ``audit`` (audit, deployment at,
retention, db). They share :mod:`~gateway.cli.output` (errors, exit codes, tables,
``--json``) and :mod:`~gateway.cli.common` (settings, registry, gateway calls), and never
import the parser.
"""

import os

# NOTE: before anything imports grpc, whose C core reads GRPC_VERBOSITY once, at import:
# below ERROR it printed its own lines on the client's stderr (a failed TLS handshake's
# "ssl_transport_security.cc ... Handshake failed") before our one-line error. A value
# the user set is kept.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from gateway.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
