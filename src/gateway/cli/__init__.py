"""The ``onnxgate`` command line: one parser, one module per command family.

:mod:`gateway.cli.parser` builds the parser and dispatches; the families (registry,
traffic, governor, governance, audit, monitoring) register their sub-commands on it.
"""

from gateway.cli.parser import main

__all__ = ["main"]
