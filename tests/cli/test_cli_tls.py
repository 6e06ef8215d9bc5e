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
