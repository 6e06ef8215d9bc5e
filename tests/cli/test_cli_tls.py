"""Issue 14: the CLI talks to a TLS gateway (a CA to trust; a client certificate and key for
mTLS), with the same options on every client command, from flags or the environment."""

from __future__ import annotations

import numpy as np
import pytest
from cli_support import onnxgate
from pki_support import make_pki
from shared import ADMIN_TOKEN

from gateway.tools import modelzoo


@pytest.fixture
def tls_gateway(registry, make_gateway, tmp_path):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="t")
    pki = make_pki(tmp_path / "pki")
    gw = make_gateway(
        tls_cert=pki / "server.pem", tls_key=pki / "server.key", tls_client_ca=pki / "ca.pem",
        metrics_port=-1,
    )  # fmt: skip
    return gw, pki


def test_admin_and_infer_over_mtls_from_flags_and_from_env(tls_gateway, tmp_path):
    gw, pki = tls_gateway
    target = f"localhost:{gw.target.rsplit(':', 1)[1]}"
    flags = ("--target", target, "--tls-ca", str(pki / "ca.pem"), "--tls-cert",
             str(pki / "client.pem"), "--tls-key", str(pki / "client.key"))  # fmt: skip
    admin = {"ONNXGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    shown = onnxgate("traffic", "show", "lin", *flags, env=admin)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1].split() == ["1", "champion", "100.0%"]

    np.save(tmp_path / "rows.npy", np.ones((1, 4), np.float32))
    env = {
        "ONNXGATE_TARGET": target,
        "ONNXGATE_CLIENT_CA": str(pki / "ca.pem"),
        "ONNXGATE_CLIENT_CERT": str(pki / "client.pem"),
        "ONNXGATE_CLIENT_KEY": str(pki / "client.key"),
    }
    served = onnxgate("infer", "lin", "--data", str(tmp_path / "rows.npy"), env=env)
    assert served.returncode == 0, served.stderr
    assert served.stdout.startswith("served by lin:1 (champion)")


def test_without_a_client_certificate_or_in_plaintext_it_says_what_was_tried(tls_gateway):
    gw, pki = tls_gateway
    target = f"localhost:{gw.target.rsplit(':', 1)[1]}"
    admin = {"ONNXGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    for extra, over in (((), ""), (("--tls-ca", str(pki / "ca.pem")), " over TLS")):
        done = onnxgate(
            "traffic", "show", "lin", "--target", target, "--timeout", "5", *extra, env=admin
        )
        assert done.returncode == 1
        assert f"cannot reach a gateway at {target}{over}" in done.stderr
    half = onnxgate(
        "traffic",
        "show",
        "lin",
        "--target",
        target,
        "--tls-cert",
        str(pki / "client.pem"),
        env=admin,
    )
    assert half.returncode == 1 and "--tls-cert and --tls-key go together" in half.stderr


def test_a_plaintext_client_is_told_tls_may_be_on_and_a_wrong_ca_prints_one_line(
    tls_gateway, tmp_path
):
    """Plaintext was told "is `onnxgate serve` running there?"; a wrong CA printed gRPC's own
    handshake log line (``ssl_transport_security.cc``) before the one-line error."""
    import os
    import subprocess
    import sys

    from cli_support import clean_env

    gw, pki = tls_gateway
    target = f"localhost:{gw.target.rsplit(':', 1)[1]}"
    admin = {"ONNXGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    plain = onnxgate("traffic", "show", "lin", "--target", target, "--timeout", "5", env=admin)
    assert plain.returncode == 1
    assert "the gateway may have TLS on: pass --tls-ca FILE" in plain.stderr
    other = make_pki(tmp_path / "other")
    env = clean_env(admin)
    env.pop("GRPC_VERBOSITY", None)  # as a user's shell has it
    wrong = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "traffic", "show", "lin", "--target", target,
         "--timeout", "5", "--tls-ca", str(other / "ca.pem"), "--tls-cert",
         str(pki / "client.pem"), "--tls-key", str(pki / "client.key")],  # fmt: skip
        capture_output=True, text=True, env=env, timeout=60, cwd=os.getcwd(),
    )  # fmt: skip
    assert wrong.returncode == 1
    lines = wrong.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnxgate: cannot reach"), wrong.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0]


def test_bench_takes_the_tls_and_token_options(registry, make_gateway, tmp_path):
    """``onnxgate bench`` had no --token-file or TLS options."""
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="t")
    pki = make_pki(tmp_path / "pki")
    gw = make_gateway(
        tls_cert=pki / "server.pem", tls_key=pki / "server.key", metrics_port=-1,
        predict_tokens={"app-token": "billing-app"},
    )  # fmt: skip
    (tmp_path / "token").write_text("app-token\n")
    target = f"localhost:{gw.target.rsplit(':', 1)[1]}"
    summary = tmp_path / "bench.json"
    done = onnxgate(
        "bench", "--target", target, "--model", "lin", "--duration", "0.5", "--warmup", "0",
        "--concurrency", "2", "--quiet", "--json", str(summary),
        "--tls-ca", str(pki / "ca.pem"), "--token-file", str(tmp_path / "token"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(summary.read_text())
    assert result["ok"] > 0 and result["errors"] == {}, result
    assert result["spec"]["tls"] is True and "app-token" not in summary.read_text()
