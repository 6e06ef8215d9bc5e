"""Data contracts on the request path: count or refuse inputs outside a version's contract.

The data plane calls :meth:`ContractGuard.check` on every request after validating it.

A model's rollout policy says what its versions' contracts do (``[contract] mode``, see
:class:`~gateway.governor.rollout.ContractPolicy`; the governor loop hands every policy's
part to :meth:`ContractGuard.configure`):

* ``off`` (the default): nothing is checked, and the request path pays one dict lookup;
* ``count``: violations are counted per version and feature
  (``onnxgate_contract_violations_total{model,version,feature}``); no answer changes;
* ``flag``: counted as ``count``, and the answer carries the response parameter
  ``contract_violations``: the violated features' names, comma-separated, in signature
  order, at most 16 of them (``contract_violations_more`` says how many more were left
  off; :func:`gateway.transport.oip.response_parameters`); the answer is otherwise
  unchanged;
* ``reject``: a request with a violating value is refused with INVALID_ARGUMENT naming the
  row, the feature and the value (and counted).

A version's contract is the newest revision an operator stored in the registry
(``onnxgate contracts set``), else the one derived from its registered reference profile
(:class:`~gateway.monitoring.contracts.Contract`); it is read from the registry off the
request path, by a thread of the guard's own, the first time the version is checked, and
requests are not checked until it has been read. A version with neither has no contract.
A new revision is picked up on that thread too: on each :meth:`ContractGuard.configure`
(every governor tick) the guard checks, when the registry's change counter moved, whether
a version it holds has a newer revision, and swaps its contract in one assignment.
Checking a request whose values all fit is one comparison pair on its own input array;
one that does not fit is stacked as float64 and judged rule by rule.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.domain import Tensors
from gateway.errors import InvalidArgument
from gateway.monitoring.contracts import DEFAULT_MARGIN, Contract
from gateway.monitoring.layout import FeatureLayout
from gateway.monitoring.reference import VersionProfiles
from registry.signature import Signature

__all__ = ["ContractCollector", "ContractGuard", "Tally"]

log = logging.getLogger(__name__)

Key = tuple[str, str]
NOTHING: tuple[str, ...] = ()
# (rows checked, rows with a violation, violations per feature name): one version's counts
Tally = tuple[int, int, dict[str, int]]


class ContractPolicy(Protocol):
    """A model's ``[contract]`` (:class:`gateway.governor.rollout.ContractPolicy`)."""

    @property
    def mode(self) -> str: ...

    @property
    def margin(self) -> float: ...


ProfileLookup = Callable[[str, str], tuple[Mapping[str, Any], str] | None]


class Revision(Protocol):
    """An operator's contract revision (:class:`registry.ContractRecord`)."""

    @property
    def revision(self) -> int: ...

    @property
    def contract(self) -> Mapping[str, Any]: ...


RevisionLookup = Callable[[str, str], Revision | None]


class _Entry:
    """One version's contract as the request path uses it."""

    __slots__ = (
        "contract",
        "layout",
        "margin",
        "revision",
        "signature",
        "single",
        "tally",
        "width",
    )

    def __init__(
        self,
        signature: Signature,
        layout: FeatureLayout,
        contract: Contract | None,
        margin: float,
        tally: list[int],
        revision: int,
    ) -> None:
        self.signature = signature
        self.revision = revision  # the operator's revision in force (0: derived)
        self.layout = layout
        self.contract = contract  # None: the version has no profile, so no contract
        self.margin = margin  # the policy's margin it was derived with
        self.tally = tally  # [rows checked, rows with a violation] (the guard's ``rows``)
        # One rank-2 input tensor (the usual "x"): checked on the request's own array.
        block = layout.blocks[0] if len(layout.blocks) == 1 else None
        self.single = block.name if block is not None and block.rank == 2 else None
        self.width = block.width if block is not None else 0


class ContractGuard:
    """Per-model contract modes and per-version contracts (see module docs)."""

    def __init__(
        self,
        profile: ProfileLookup,
        revision: RevisionLookup | None = None,
        changes: Callable[[], int] | None = None,
    ) -> None:
        self._profile = profile
        self._revision = revision  # (model, version) -> the newest edited revision
        self._changes = changes  # the registry's change counter (blocking)
        self._seen_change = -1
        self._refreshing = False
        self._policies: dict[str, tuple[str, float]] = {}  # model -> (mode, margin)
        self._contracts: dict[Key, _Entry] = {}  # absent: not read yet
        self._loading: set[Key] = set()
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="contracts")
        self.counts: dict[Key, tuple[tuple[str, ...], npt.NDArray[np.int64]]] = {}
        # [rows checked, rows with any violation]; written on the event loop only
        self.rows: dict[Key, list[int]] = {}

    def configure(self, policies: Mapping[str, ContractPolicy]) -> None:
        """Every model's ``[contract]``; models left out are off. A changed margin
        derives its versions' contracts again (on their next request)."""
        self._policies = {m: (p.mode, p.margin) for m, p in policies.items() if p.mode != "off"}
        if self._revision is not None and self._contracts and not self._refreshing:
            self._refreshing = True
            self._pool.submit(self._refresh)

    def margin(self, model: str) -> float:
        """The margin the model's policy derives contracts with (the default when off)."""
        return self._policies.get(model, ("off", DEFAULT_MARGIN))[1]

    def _refresh(self) -> None:
        """Reload the versions whose newest revision changed (the guard's thread)."""
        try:
            counter = self._changes() if self._changes is not None else self._seen_change + 1
            if counter == self._seen_change or self._revision is None:
                return
            for key, entry in list(self._contracts.items()):
                found = self._revision(*key)
                if (found.revision if found is not None else 0) != entry.revision:
                    self._load(key, entry.signature, entry.margin)
            self._seen_change = counter
        except Exception as exc:  # noqa: BLE001 - tried again on the next tick
            log.warning("data contracts not refreshed (%s)", exc)
        finally:
            self._refreshing = False

    def mode(self, model: str) -> str:
        """The model's contract mode as last configured."""
        return self._policies.get(model, ("off", 0.0))[0]

    def ready(self, model: str, version: str) -> bool:
        """Whether the version's contract (or its absence) has been read, with the margin
        its model's policy now says."""
        found = self._contracts.get((model, version))
        policy = self._policies.get(model)
        return found is not None and (policy is None or found.margin == policy[1])

    def revision(self, model: str, version: str) -> int | None:
        """The revision of the version's contract in use (0: derived from its reference;
        None: not read yet)."""
        found = self._contracts.get((model, version))
        return None if found is None else found.revision

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def tallies(self, model: str) -> dict[str, Tally]:
        """Each checked version's cumulative counts (the governor's evidence)."""
        out: dict[str, Tally] = {}
        for (m, version), (rows, violating) in list(self.rows.items()):
            if m != model:
                continue
            names, counts = self.counts.get((m, version), ((), None))
            per = {} if counts is None else dict(zip(names, counts.tolist(), strict=True))
            out[version] = (rows, violating, {k: n for k, n in per.items() if n})
        return out

    def check(
        self, model: str, version: str, signature: Signature, inputs: Tensors
    ) -> tuple[str, ...]:
        """Count the request's violations; raise INVALID_ARGUMENT in ``reject`` mode; in
        ``flag`` mode answer the violated features' names (else an empty tuple)."""
        policy = self._policies.get(model)
        if policy is None:
            return NOTHING
        key = (model, version)
        found = self._contracts.get(key)
        if found is None or found.margin != policy[1]:
            self._load_later(key, signature, policy[1])
            if found is None:
                return NOTHING
        contract = found.contract
        if contract is None:
            return NOTHING
        if found.single is not None:
            # NOTE: the common case (one input tensor, every value in range) costs one
            # comparison pair on the request's own array: no float64 copy, no objects.
            arr = inputs.get(found.single)
            if arr is not None and arr.ndim == 2 and arr.shape[1] == found.width:
                if contract.fits(arr):
                    found.tally[0] += arr.shape[0]
                    return NOTHING
        x = found.layout.stack([inputs])
        if x.shape[1] != len(contract.feature_names):
            return NOTHING
        violations = contract.check(x)
        found.tally[0] += x.shape[0]
        found.tally[1] += violations.rows
        if not violations.total:
            return NOTHING
        with self._lock:
            names, counts = self.counts.get(key, (contract.feature_names, None))
            total = violations.per_feature if counts is None else counts + violations.per_feature
            self.counts[key] = (names, total)
        if policy[0] == "reject" and violations.first is not None:
            raise InvalidArgument(contract.describe(violations.first))
        if policy[0] == "flag":
            names = contract.feature_names
            return tuple(names[i] for i in np.flatnonzero(violations.per_feature))
        return NOTHING

    def _load_later(self, key: Key, signature: Signature, margin: float) -> None:
        with self._lock:
            if key in self._loading:
                return
            self._loading.add(key)
        self._pool.submit(self._load, key, signature, margin)

    def _load(self, key: Key, signature: Signature, margin: float) -> None:
        layout = FeatureLayout.from_specs(signature.inputs)
        contract, revision = None, 0
        try:
            edited = None if self._revision is None else self._revision(*key)
            stored = None if edited is not None else self._profile(*key)
            if edited is not None:
                contract, revision = Contract.from_dict(edited.contract), edited.revision
                if contract.feature_names != layout.names:
                    contract = None  # stored for another signature: no contract
            elif stored is not None:
                inputs = VersionProfiles.from_doc(stored[0]).inputs
                if inputs is not None and inputs.n_features == layout.n_features:
                    contract = Contract.from_profile(inputs, margin)
        except Exception as exc:  # noqa: BLE001 - retried on a later request
            log.warning("no data contract for %s:%s yet (%s)", *key, exc)
            with self._lock:
                self._loading.discard(key)
            return
        with self._lock:
            tally = self.rows.setdefault(key, [0, 0])
            entry = _Entry(signature, layout, contract, margin, tally, revision)
            self._contracts[key] = entry
            self._loading.discard(key)


class ContractCollector(Collector):
    """``onnxgate_contract_violations_total{model,version,feature}`` at scrape time."""

    def __init__(self, guard: ContractGuard) -> None:
        self._guard = guard

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "onnxgate_contract_violations",
            "Input values outside the version's data contract, per feature.",
            labels=["model", "version", "feature"],
        )
        for (model, version), (names, counts) in sorted(dict(self._guard.counts).items()):
            for name, n in zip(names, counts.tolist(), strict=True):
                if n:
                    family.add_metric([model, version, name], n)
        yield family
