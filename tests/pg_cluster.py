"""A throwaway PostgreSQL cluster for the test session, and the backend-parametrised URL.

Loaded once for the whole session (``pytest_plugins`` in the root conftest), so the
registry and governance suites share one cluster. The cluster is made with the server's
own tools — ``initdb`` (trust auth) and ``pg_ctl`` — found on PATH or under
``/usr/lib/postgresql/*/bin``, in a temporary directory, on a free port with its Unix
socket in that directory, tuned for speed (no fsync), and stopped at the end.

Without the binaries the PostgreSQL half of the suites is skipped — except with
``CI=true``, where a missing PostgreSQL is a failure. ``ONNXGATE_TEST_REGISTRY_URL``
points the PostgreSQL half at an existing scratch database instead (it is wiped).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from registry.models import Base
from registry.schema import make_engine

URL_ENV = "ONNXGATE_TEST_REGISTRY_URL"

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""Parameters for a backend-parametrised ``registry_url`` fixture."""


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then the newest
    /usr/lib/postgresql/<major>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def major(path: str) -> float:
        try:
            return float(Path(path).parts[-3])
        except ValueError:
            return 0.0

    for initdb in sorted(candidates, key=major, reverse=True):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """initdb + pg_ctl in a temp directory; ``url`` once started."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="onnxgate-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://onnxgate@/postgres?host={self.root}&port={self.port}"
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            # NOTE: initdb and postgres refuse to run as root; run them as an ordinary user
            # that owns the temp directory.
            for name in ("postgres", "nobody"):
                try:
                    user = pwd.getpwnam(name)
                except KeyError:
                    continue
                os.chown(self.root, user.pw_uid, user.pw_gid)
                self._run_as = {"user": user.pw_uid, "group": user.pw_gid}
                break

    def _run(self, *args: str) -> None:
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.root)}
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self._run_as,
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            )

    def start(self) -> str:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "onnxgate",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        self.resume()
        return self.url

    def pause(self) -> None:
        """Stop the server and keep its data: a database outage (:meth:`resume` ends it)."""
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def resume(self) -> None:
        """Start the server on the cluster's data, port and socket directory."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
            "-l", str(self.root / "server.log"), "-o", options,
        )  # fmt: skip

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def locate_binaries() -> Path:
    """:func:`find_pg_bin`, or skip — or fail, with ``CI=true`` — when there are none."""
    bindir = find_pg_bin()
    if bindir is None:
        message = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
            "/usr/lib/postgresql/*/bin"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; with CI=true a missing PostgreSQL is a failure")
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0] or "this test"
        pytest.skip(f"{test}: {message}; `apt-get install postgresql` (or `.ci/run`) to run it")
    return bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL database for this session (see the module docstring)."""
    external = os.environ.get(URL_ENV)
    if external:
        yield external
        return
    cluster = Cluster(locate_binaries())
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def wipe(url: str) -> None:
    """Drop every registry table (and Alembic's) so the next test starts empty."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Body of a ``registry_url`` fixture parametrised with :data:`BACKENDS`."""
    if request.param == "sqlite":
        # A nested directory proves Registry.open creates the parent.
        yield f"sqlite:///{tmp_path / 'db' / 'registry.db'}"
        return
    url: str = request.getfixturevalue("postgres_server")
    wipe(url)  # before, not after: the next test wipes anyway, and the cluster is thrown away
    yield url
