"""Registry changes pushed, not polled, on PostgreSQL: LISTEN/NOTIFY.

The ``i13_fleet`` migration installs a trigger that NOTIFYs :data:`CHANNEL` whenever the
registry's change counter moves (every audited write bumps it), so the notification is
sent on commit, by whichever process or tool wrote. :func:`listen_for_changes` blocks on
one dedicated psycopg 3 connection and calls back on each notification; the gateway
keeps polling as the fallback (a lost connection is retried, notifications sent while
it was down are caught by the next poll). SQLite has no such thing: polling only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import make_url

__all__ = ["CHANNEL", "listen_for_changes", "supports_notify"]

log = logging.getLogger(__name__)

CHANNEL = "onnxgate_registry_changes"


def supports_notify(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _libpq_uri(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def listen_for_changes(
    url: str, on_change: Callable[[], None], stop: threading.Event, *, wake_s: float = 1.0
) -> None:
    """Call ``on_change`` on each change notification until ``stop`` is set (blocking).
    Connection failures are logged (never the URL: it may hold a password) and retried."""
    import psycopg

    while not stop.is_set():
        try:
            with psycopg.connect(_libpq_uri(url), autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                while not stop.is_set():
                    for _ in conn.notifies(timeout=wake_s, stop_after=1):
                        on_change()
        except psycopg.Error as exc:
            log.warning(
                "registry change notifications unavailable (%s); polling", type(exc).__name__
            )
            stop.wait(wake_s * 5)
