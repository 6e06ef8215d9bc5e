"""Whose failure a failed run is: the request's values, or the version itself.

A batch shares one ``InferenceSession.run``, so one request whose values the model cannot
run (an index out of range, a string a ``Cast`` cannot parse) fails the run for every
request in it. :class:`Isolation` settles such a batch so that no request can hurt
another:

1. each request of the batch runs again alone; those that run get their own answers;
2. a request that fails alone is the caller's fault when the model is healthy: another
   request of the batch ran, or the version's last good input (else its synthetic sample)
   still runs. It gets :class:`~gateway.errors.RefusedByModel` (``INVALID_ARGUMENT``,
   which the governor's error-rate gate does not count), logged as one warning a minute
   without a traceback (the callers' data, not a fault of ours);
3. only when the model fails on good inputs too is the failure the version's:
   :class:`~gateway.errors.InferenceFailed` (``INTERNAL``), logged with the traceback,
   never shown to the client.

A health check that passed holds for :data:`HEALTH_HOLDS_S`, so a flood of bad requests
costs at most one extra probe run a second beyond their own runs. Whether a candidate that
refuses values its *champion* runs is the candidate's regression is the data plane's call
(:meth:`gateway.serving.dataplane.DataPlane`), which knows the versions' roles.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from gateway.domain import Tensors
from gateway.errors import RefusedByModel
from gateway.serving.execution import rows_of
from gateway.serving.waiters import Waiter, fail

__all__ = ["HEALTH_HOLDS_S", "REFUSED_LOG_EVERY_S", "Isolation"]

# The batcher's logger: a batch's failures are logged under one name wherever they arise.
logger = logging.getLogger("gateway.serving.batching")

HEALTH_HOLDS_S = 1.0
"""How long a passed health check (the model ran a good input) stands for failed runs."""

REFUSED_LOG_EVERY_S = 60.0
"""At most one warning per version this often about requests the model refused."""

Run = Callable[[list[Tensors], int], Awaitable[Tensors]]


class Isolation:
    """The blame for one version's failed runs (see the module docstring)."""

    def __init__(
        self,
        name: str,
        run: Run,
        clock: Callable[[], float],
        probe: Callable[[], Tensors] | None = None,
    ) -> None:
        self._name = name
        self._run = run
        self._clock = clock
        self._probe = probe
        # The inputs of the last request that ran: the first witness that the model is
        # healthy when a run fails (a reference to one request's arrays, replaced per batch).
        self.known_good: Tensors | None = None
        self._healthy_until = float("-inf")
        self._logged = float("-inf")
        self._quiet = 0  # refusals not logged since the last warning

    async def settle(self, batch: list[Waiter], rows: int, error: Exception) -> None:
        """Settle a batch whose run failed: each request alone, blame where it lies."""
        guilty: list[Waiter] = []
        ran = False
        if len(batch) == 1:
            guilty = batch
        else:
            for request in batch:
                if request.future.done():
                    continue
                try:
                    alone = await self._run([request.inputs], request.rows)
                except Exception:  # noqa: BLE001 - this request's own run failed
                    guilty.append(request)
                    continue
                ran = True
                self.known_good = request.inputs
                if not request.future.done():
                    request.future.set_result(alone)
        if not guilty:
            return  # only the combination failed; every request has its own answer
        if ran or await self.model_runs():
            self.refused(error, len(guilty))
            for request in guilty:
                if not request.future.done():
                    request.future.set_exception(self.refusal(error))
            return
        logger.error("model %s failed to run a batch of %d rows", self._name, rows, exc_info=error)
        fail(guilty, rows, self._name)

    async def model_runs(self) -> bool:
        """True when the version runs a good input now (or did within the last second)."""
        now = self._clock()
        if now < self._healthy_until:
            return True
        inputs = self.known_good
        if inputs is None and self._probe is not None:
            try:
                inputs = self._probe()
            except Exception:  # noqa: BLE001 - no sample: the model cannot be vouched for
                inputs = None
        if inputs is None:
            return False
        try:
            await self._run([inputs], rows_of(inputs))
        except Exception:  # noqa: BLE001 - the model fails on good inputs too
            return False
        self._healthy_until = now + HEALTH_HOLDS_S
        return True

    def refusal(self, error: Exception) -> RefusedByModel:
        return RefusedByModel(
            f"inputs: model {self._name} cannot run this request's values "
            f"({type(error).__name__}); it runs other requests"
        )

    def refused(self, error: Exception, count: int) -> None:
        """One warning a minute, with no traceback: the clients' data, not our fault."""
        now = self._clock()
        self._quiet += count
        if now - self._logged < REFUSED_LOG_EVERY_S:
            return
        logger.warning(
            "model %s: %d request(s) carried values the model cannot run (%s); answered "
            "INVALID_ARGUMENT as the callers' errors",
            self._name,
            self._quiet,
            type(error).__name__,
        )
        self._logged = now
        self._quiet = 0
