"""Load generator script: ``python benchmarks/loadgen.py --target HOST:PORT --model NAME``.

A thin wrapper around :mod:`gateway.tools.loadgen` (also ``onnxgate bench``); ``--help`` lists the
flags. The other benchmark scripts run it as a subprocess so load and driver never share a
process.
"""

from __future__ import annotations

import sys

from gateway.tools.loadgen import main

if __name__ == "__main__":
    sys.exit(main())
