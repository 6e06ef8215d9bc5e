"""What one load run is (:class:`LoadSpec`), what one client saw (:class:`Record`), and the
protocol constants the other modules share."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["LATE_S", "MODEL_INFER", "PERCENTILES", "LoadSpec", "Record"]

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
LATE_S = 0.002  # open loop: a send this much after its scheduled time counts as late
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass(frozen=True)
class LoadSpec:
    """One load run. ``rate`` None: closed loop at ``concurrency``; else open loop."""

    target: str
    model: str
    version: str = ""
    concurrency: int = 64  # closed loop: callers; open loop: most calls outstanding
    rate: float | None = None
    arrival: str = "poisson"  # or "uniform"
    duration_s: float = 10.0
    warmup_s: float = 1.0
    rows: int = 1
    samples: int = 16  # distinct prebuilt random requests (before routing keys)
    inputs: tuple[tuple[str, str], ...] = ()  # (input name or "", path.npy): all their rows
    keys: int = 0
    ids: bool = False  # give each prebuilt request an id (a gateway then keeps predictions)
    unique_ids: bool = False  # a fresh id on every request sent (soaks of per-id records)
    contents: str = "raw"  # "typed" puts values in contents.* (for servers without raw)
    procs: int = 1
    connections: int = 0  # per process; 0: min(concurrency, 8)
    timeout_s: float = 30.0
    seed: int = 0
    progress: bool = True
    metadata: tuple[tuple[str, str], ...] = ()  # sent with every call (a bearer token)
    tls: tuple[bytes | None, bytes | None, bytes | None] | None = None  # (CA, cert, key) PEM
    stream: bool = False  # over ModelStreamInfer, one stream per connection (closed loop only)

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.procs < 1 or self.rows < 1 or self.samples < 1:
            raise ValueError("concurrency, procs, rows and samples must be >= 1")
        if self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError("duration must be > 0 and warmup >= 0")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0")
        if self.arrival not in ("poisson", "uniform") or self.contents not in ("raw", "typed"):
            raise ValueError("arrival is poisson|uniform, contents is raw|typed")
        if self.stream and self.rate is not None:
            raise ValueError("--stream runs the closed loop only: leave out --rate")

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"

    @property
    def connections_per_proc(self) -> int:
        # NOTE: several connections, because SO_REUSEPORT spreads *connections* over the
        # gateway's workers; one connection would load one worker only.
        return self.connections or min(self.concurrency, 8)


@dataclass
class Record:
    """What one process saw inside the measurement window."""

    latencies: list[float] = field(default_factory=list)  # seconds, requests started in window
    codes: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    ok_in_window: int = 0  # successful responses that arrived before the window closed
    done: int = 0  # every completion, warm-up included (progress line)
    errors: int = 0
    sent: int = 0
    dropped: int = 0
    late: int = 0
    cpu_s: float = 0.0  # this client process's CPU time over the run, all threads
    wall_s: float = 0.0
