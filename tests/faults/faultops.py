"""One registry write, run as its own process by the failpoint tests.

``python tests/faults/faultops.py OP REGISTRY_URL ARTIFACT_DIR``; with
``ONNXGATE_FAILPOINTS`` set, the process dies (or fails) at that step of the write.
The operations are exactly what the product does: the CLI's and admin API's registry calls,
and the governor's apply (``Governor._apply`` then ``GovernorStore.save_state``).
"""

from __future__ import annotations

import sys

from gateway.tools import modelzoo
from registry.registry import Registry

NEW_MODEL = modelzoo.linear(seed=9)  # same signature as the setup's versions, new bytes


def run(op: str, reg: Registry) -> None:
    if op == "register":
        reg.register_version("m", NEW_MODEL, actor="faultops")
    elif op == "deploy":
        reg.set_weights("m", {"1": 0.5, "2": 0.5}, actor="faultops")
    elif op == "governor":
        details = {"decision": {"kind": "advance"}, "policy_version": 1}
        reg.set_weights("m", {"1": 0.9, "2": 0.1}, actor="governor", details=details)
        reg.governor.save_state(
            "m",
            {"step": 0, "candidate": "2"},
            last_decision={"kind": "advance"},
            next_evaluation_at=None,
        )
    elif op == "retention":
        reg.governance.retention(apply=True, actor="faultops")
    else:
        raise SystemExit(f"unknown op {op!r}")


def main(argv: list[str]) -> None:
    op, url, artifacts = argv
    reg = Registry.open(url, artifacts, create=False)
    try:
        run(op, reg)
    finally:
        reg.close()


if __name__ == "__main__":
    main(sys.argv[1:])
