"""Benchmark: the prediction log in object storage — upload, mirror and verify over a bucket.

Starts moto_server (an S3-compatible server) on loopback as its own process group, writes
``--files`` Parquet files of about ``--mb`` MB each into a spool, and times:
the s3 sink uploading them (``ObjectStoreSink``, as if a previous process left them), a
reader's full mirror of the prefix (what ``log verify --dir s3://…`` does), a second mirror
with nothing changed (what ``log query`` pays), and the digests over the mirror against the
same over the spool copy. moto keeps objects in memory in one Python process, so the
figures bound the sink's own overhead, not a real bucket's bandwidth.

    PYTHONPATH=src python benchmarks/prediction_log_s3.py [--files 8] [--mb 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import RESULTS, free_port, write_json

from gateway.predictionlog.chain import verify
from gateway.predictionlog.objectstore import ObjectStoreSink, mirror
from gateway.predictionlog.parquet import file_sha256


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=2):
                return proc, endpoint
        except Exception:  # noqa: BLE001 - anything but an answer: not ready yet
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)


def _files(spool: Path, count: int, mb: float) -> int:
    rng = np.random.default_rng(0)
    total = 0
    for i in range(count):
        folder = spool / "model=m" / "date=2026-03-01"
        folder.mkdir(parents=True, exist_ok=True)
        rows = max(1, int(mb * 1024 * 1024 / 4096))
        data = [rng.bytes(4096) for _ in range(rows)]  # incompressible, like float tensors
        path = folder / f"part-{i}.parquet"
        pq.write_table(pa.table({"request_id": [f"r{i}-{j}" for j in range(rows)],
                                 "data": pa.array(data, pa.binary())}), path)  # fmt: skip
        total += path.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mb", type=float, default=8.0)
    args = parser.parse_args()
    proc, endpoint = _start_moto()
    work = Path(tempfile.mkdtemp(prefix="predlog-s3-"))
    try:
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1"})  # fmt: skip
        from registry import s3_client

        client = s3_client()  # made once: a boto3 client costs ~0.3 s to build
        client.create_bucket(Bucket="bench")
        spool, copy = work / "spool", work / "copy"
        total = _files(spool, args.files, args.mb)
        shutil.copytree(spool, copy)
        digests = {p.relative_to(copy).as_posix(): file_sha256(p) for p in copy.rglob("*.parquet")}
        url = "s3://bench/log"

        t0 = time.perf_counter()
        sink = ObjectStoreSink(url, spool, retry_s=0.01, client=client)
        sink.tick(0.0)
        while sink.waiting:
            time.sleep(0.005)
        sink.close()
        upload_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        cache = mirror(url, work / "cache", fresh=True, client=client)
        mirror_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        mirror(url, cache, client=client)
        unchanged_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ok_bucket = verify(cache, digests, []).ok
        verify_mirror_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ok_local = verify(copy, digests, []).ok
        verify_local_s = time.perf_counter() - t0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    mb = total / 1e6
    doc = {
        "files": args.files, "bytes": total, "load_average": os.getloadavg(),
        "upload_s": upload_s, "upload_mb_s": mb / upload_s,
        "mirror_fresh_s": mirror_s, "mirror_fresh_mb_s": mb / mirror_s,
        "mirror_unchanged_s": unchanged_s, "verify_mirror_s": verify_mirror_s,
        "verify_local_s": verify_local_s, "intact": ok_bucket and ok_local,
    }  # fmt: skip
    print(f"{args.files} files, {mb:.1f} MB (load average {os.getloadavg()[0]:.1f})")
    print(f"  upload (s3 sink)         {upload_s:7.2f} s  {mb / upload_s:7.1f} MB/s")
    print(f"  mirror, every object     {mirror_s:7.2f} s  {mb / mirror_s:7.1f} MB/s")
    print(f"  mirror, nothing changed  {unchanged_s:7.3f} s")
    print(f"  digests over the mirror  {verify_mirror_s:7.3f} s; over a local copy "
          f"{verify_local_s:.3f} s; intact: {doc['intact']}")  # fmt: skip
    write_json(RESULTS / "prediction_log_s3.json", doc)


if __name__ == "__main__":
    main()
