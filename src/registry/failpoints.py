"""Named failpoints at each step of a registry write, for fault-injection tests.

Off by default. ``ONNXGATE_FAILPOINTS`` lists the points to trip, comma-separated, each
optionally with an action after ``=``::

    ONNXGATE_FAILPOINTS=register.before_commit            # SIGKILL this process there
    ONNXGATE_FAILPOINTS=store.write=enospc,deployment.after_commit=raise

Actions: ``kill`` (the default: ``SIGKILL`` to this process, nothing runs after it, as in a
power cut or an OOM kill), ``raise`` (:class:`FailpointError`) and ``enospc`` (``OSError``
ENOSPC, as a full disk would). Tests run a real process with the variable set, so a crash
happens at an exact step instead of racing a sleep.

Points (:data:`POINTS`), in the order a write passes them:

* ``store.write`` before artifact bytes are written; ``store.before_rename`` after the
  temporary file is written and synced, before it takes its content-addressed name;
* ``register.after_artifact`` (bytes stored, nothing recorded), ``register.before_commit``,
  ``register.after_commit``;
* ``deployment.before_commit``, ``deployment.after_commit`` (every revision: set, weights,
  promote, rollback, and the governor's changes);
* ``governor.before_commit``, ``governor.after_commit`` (the governor's state after a
  decision);
* ``retention.after_purge`` (bytes deleted, deletion not committed), ``retention.after_commit``.

NOTE: the variable is read at every point, not once: a point costs a dict lookup, points
sit on write paths only (never on the inference path), and tests can set it per process.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Mapping

__all__ = ["ENV", "POINTS", "FailpointError", "hit"]

ENV = "ONNXGATE_FAILPOINTS"

POINTS = (
    "store.write",
    "store.before_rename",
    "register.after_artifact",
    "register.before_commit",
    "register.after_commit",
    "deployment.before_commit",
    "deployment.after_commit",
    "governor.before_commit",
    "governor.after_commit",
    "retention.after_purge",
    "retention.after_commit",
)

_ACTIONS = ("kill", "raise", "enospc")


class FailpointError(RuntimeError):
    """Raised at a failpoint whose action is ``raise``."""


def _actions(spec: str) -> dict[str, str]:
    armed: dict[str, str] = {}
    for item in spec.split(","):
        name, _, action = item.strip().partition("=")
        if not name:
            continue
        action = action.strip() or "kill"
        if name not in POINTS or action not in _ACTIONS:
            # A typo must not silently test nothing.
            raise ValueError(
                f"{ENV}: {item.strip()!r} is not <point>[=kill|raise|enospc]; "
                f"points: {', '.join(POINTS)}"
            )
        armed[name] = action
    return armed


def hit(point: str, environ: Mapping[str, str] = os.environ) -> None:
    """Trip ``point`` if ``ONNXGATE_FAILPOINTS`` arms it; otherwise do nothing."""
    spec = environ.get(ENV)
    if not spec:
        return
    action = _actions(spec).get(point)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    raise FailpointError(f"failpoint {point} tripped")
