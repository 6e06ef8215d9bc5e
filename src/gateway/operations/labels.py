"""The label-join protocol, and the request journal's lookup by id for Explain.

Predictions reach the feedback store through the tap queue, so a label sent right after its
prediction first waits, briefly, for the queue to settle; with a fleet, predictions other
processes made are then fetched so their labels join here; each label that would join is
claimed in the fleet's label table (a label another member joined already is a duplicate);
then each label is joined and its outcome counted. An explanation by request id reads the
request journal (:class:`gateway.governor.journal.RequestJournal`), whose lookup settles the
taps the same way, and, when the journal no longer has the id (another gateway served it, a
restart, past the join window), the prediction log (``history``:
:mod:`gateway.predictionlog.lookup`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.domain import Tensors
from gateway.errors import InvalidArgument
from gateway.governor.feedback import FeedbackStore, LabelOutcome
from gateway.operations.deployments import require

__all__ = ["MAX_LABELS", "Label", "LabelFleet", "Labels"]

MAX_LABELS = 10_000  # per call; the CLI sends files in batches of this size


@dataclass(frozen=True)
class Label:
    """A delayed label (class or value) for one row of a served request."""

    request_id: str
    row: int = 0
    label: str | None = None
    value: float | None = None


class LabelFleet(Protocol):
    """What the label join needs of a fleet (:class:`gateway.fleet.node.FleetNode`)."""

    async def resolve(self, model: str, request_ids: Sequence[str]) -> None: ...

    async def claim(self, model: str, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]: ...


class Labels:
    """Joins labels to recorded predictions, and finds a recorded request's inputs."""

    def __init__(
        self,
        feedback: FeedbackStore,
        *,
        settle: Callable[[], Awaitable[object]] | None = None,
        fleet: Callable[[], LabelFleet | None] | None = None,
        history: Callable[[str, str], Awaitable[tuple[str, Tensors] | None]] | None = None,
    ) -> None:
        self._feedback = feedback
        self._history = history
        self._settle = settle
        self._fleet = fleet or (lambda: None)

    @property
    def in_fleet(self) -> bool:
        """Whether labels are resolved across a fleet (unknown ids hint differently)."""
        return self._fleet() is not None

    async def join_labels(self, model: str, items: Sequence[Label]) -> Mapping[LabelOutcome, int]:
        """Settle the taps, resolve from the fleet, join each label; count the outcomes."""
        require(model=model)
        if len(items) > MAX_LABELS:
            raise InvalidArgument(f"items: at most {MAX_LABELS} per call, got {len(items)}")
        if self._settle is not None:
            await self._settle()
        fleet = self._fleet()
        if fleet is not None:
            await fleet.resolve(model, [item.request_id for item in items])
        taken = set() if fleet is None else await self._taken_elsewhere(fleet, model, items)
        counts = dict.fromkeys(LabelOutcome, 0)
        for item in items:
            outcome = self._feedback.add_label(
                model, item.request_id, row=item.row, label=item.label, value=item.value,
                elsewhere=(item.request_id, item.row) in taken,
            )  # fmt: skip
            counts[outcome] += 1
        return counts

    async def _taken_elsewhere(
        self, fleet: LabelFleet, model: str, items: Sequence[Label]
    ) -> set[tuple[str, int]]:
        """The labels another member joined already: each label that would join here is
        claimed in the fleet's label table first, and a claim refused is a duplicate."""
        keys = [
            (i.request_id, i.row)
            for i in items
            if self._feedback.joinable(model, i.request_id, row=i.row, label=i.label,
                                       value=i.value)
        ]  # fmt: skip
        return set(keys) - await fleet.claim(model, keys) if keys else set()

    async def recorded_inputs(self, model: str, request_id: str) -> tuple[str, Tensors] | None:
        """The version that served ``request_id`` and its inputs: from the request journal
        once the taps settled, else from the prediction log (None when neither keeps them)."""
        journal = self._feedback.journal
        found = None if journal is None else await journal.lookup(model, request_id)
        if found is None and self._history is not None:
            found = await self._history(model, request_id)
        return found
