"""The governor: moves traffic between a model's versions, by its rollout policy.

Pure core: :mod:`~gateway.governor.rollout` (the per-model policy),
:mod:`~gateway.governor.evidence`, :mod:`~gateway.governor.gates`,
:mod:`~gateway.governor.sequential` and :mod:`~gateway.governor.decide` (policy + evidence
-> decision). Around it: :mod:`~gateway.governor.sources` gathers evidence,
:mod:`~gateway.governor.feedback` joins delayed labels, :mod:`~gateway.governor.loop` runs
the leader's periodic evaluation and writes decisions to the registry,
:mod:`~gateway.governor.collector` exports metrics. No grpc.

This room has no face of its own: import what you use from the module that defines it.
"""
