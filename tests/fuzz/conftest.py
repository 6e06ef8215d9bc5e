"""Hypothesis profiles for the fuzz suite.

``ci`` (the default) is derandomized: the same cases every run, so the suite cannot fail
by chance; ``explore`` (``HYPOTHESIS_PROFILE=explore``, with ``--timeout 0``: 1,000
examples outlast pytest-timeout's 300 s on a busy machine) draws new cases each run, for
hunting. Either way no example database is written into the tree; a case found by hunting
is kept as an ``@example`` on its property (the corpus).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # a real server on a shared machine: timing is not the property
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("ci", max_examples=100, derandomize=True, **_COMMON)
settings.register_profile("explore", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
