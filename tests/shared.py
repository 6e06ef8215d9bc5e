"""Constants and helpers shared by test modules (conftest.py holds only fixtures).

NOTE: import these from here, not from ``conftest``: with several conftest.py files in
the tree, ``import conftest`` can resolve to the wrong one.
"""

from __future__ import annotations

ADMIN_TOKEN = "test-admin-token"


def admin_metadata(token: str = ADMIN_TOKEN) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
