"""What protects the console's sign-in and pages: throttling, origin checks, headers.

* **Throttle**: at most ``attempts`` failed sign-ins per client address in ``window_s``
  seconds (per process); beyond it ``429`` with ``Retry-After`` until the oldest failure
  ages out. A correct token is never slowed. The table of clients is bounded (the oldest
  forgotten first), so a spray of addresses cannot grow memory.
* **Origin**: a sign-in ``POST`` whose ``Origin`` (or ``Sec-Fetch-Site: cross-site``) says
  it came from another site is refused with ``403``: a page elsewhere cannot sign a browser
  in (login CSRF). Scripts send no ``Origin`` and are unaffected.
* **Headers**: every console response forbids framing, sniffing and caching, keeps
  referrers on the site, and carries a Content-Security-Policy that allows only the
  console's own inline styles and images (the pages have no scripts).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping

__all__ = ["SECURITY_HEADERS", "LoginThrottle", "cross_site", "retry_after_header"]

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes browsers send Origin: null
    "Cache-Control": "no-store",
}

MAX_CLIENTS = 10_000


class LoginThrottle:
    """Failed sign-ins per client, in a sliding window (see the module docstring)."""

    def __init__(
        self,
        attempts: int = 10,
        window_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._attempts = attempts
        self._window = window_s
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again; None when it may try now."""
        failures = self._failures.get(client)
        if failures is None:
            return None
        now = self._clock()
        while failures and now - failures[0] >= self._window:
            failures.popleft()
        if len(failures) < self._attempts:
            return None
        return self._window - (now - failures[0])

    def failed(self, client: str) -> None:
        failures = self._failures.get(client)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=self._attempts)
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(client)
        failures.append(self._clock())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def cross_site(headers: Mapping[str, str], scheme: str, host: str) -> bool:
    """True when a request's own headers say it was sent by a page of another site."""
    if headers.get("sec-fetch-site", "") == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    # NOTE: "null" (a sandboxed frame, a file: page) is another site as far as we can tell.
    return origin != f"{scheme}://{host}"
