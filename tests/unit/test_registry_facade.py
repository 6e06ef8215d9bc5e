"""Only the registry facade runs registry calls off the event loop; faces wrap at registration.

``gateway.registry_facade.AsyncRegistry`` is the one async face of the synchronous registry:
a ``run_blocking(executor, <registry call>, ...)`` anywhere else in ``src/gateway`` is a
second way in, which this test refuses (import-linter cannot see calls, only imports). And
authorisation is applied when handlers are registered, never by replacing methods on a live
servicer (no ``setattr`` on servicers in the transport).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import gateway

SRC = Path(gateway.__file__).parent
FACADE = SRC / "registry_facade.py"
# The fleet node runs the fleet store on its own publisher thread (gateway.fleet.node);
# folding it into the facade belongs to the side-work rework of that module.
ALLOWED = {SRC / "fleet" / "node.py"}
REGISTRY_WORDS = ("registry", "reg.", "_reg.", "_store.", "_gov.", "governance.", "governor.")


def _registry_run_blocking(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or len(node.args) < 2:
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name != "run_blocking":
            continue
        target = ast.unparse(node.args[1])
        if any(word in target for word in REGISTRY_WORDS):
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: run_blocking(.., {target}, ..)")
    return found


def test_no_run_blocking_around_registry_calls_outside_the_facade() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == FACADE or path in ALLOWED or "_proto" in path.parts:
            continue
        offenders.extend(_registry_run_blocking(path))
    assert offenders == [], "use gateway.registry_facade.AsyncRegistry instead:\n" + "\n".join(
        offenders
    )


def test_the_facade_is_where_the_registry_calls_are() -> None:
    assert len(_registry_run_blocking(FACADE)) >= 30


def test_no_servicer_methods_are_replaced_on_instances() -> None:
    # setattr on a message field (the drift table's proto mapping) is fine; on self is not.
    for path in sorted((SRC / "transport").rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"setattr\(\s*(self|servicer)\b", text), (
            f"{path.relative_to(SRC)} replaces methods with setattr"
        )
