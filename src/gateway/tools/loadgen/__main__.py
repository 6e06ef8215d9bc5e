"""``python -m gateway.tools.loadgen``: the load generator's command line."""

import sys

from gateway.tools.loadgen.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
