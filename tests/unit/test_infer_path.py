"""The HTTP face's infer fast path recognises exactly the paths its routes declare."""

from __future__ import annotations

import pytest

from gateway.transport.http.app import infer_path_params


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v2/models/mlp/infer", {"model": "mlp"}),
        ("/v2/models/mlp/versions/3/infer", {"model": "mlp", "version": "3"}),
        ("/v2/models/a b/infer", {"model": "a b"}),  # the path arrives percent-decoded
        ("/v2/models//infer", None),
        ("/v2/models/mlp/versions//infer", None),
        ("/v2/models/mlp/infer/", None),
        ("/v2/models/mlp/x/3/infer", None),
        ("/v2/models/mlp", None),
        ("/v2/models/stats", None),
        ("/v1/models/mlp/infer", None),
        ("/v2/repository/mlp/infer", None),
        ("/v2/models/a/b/c/d/infer", None),
    ],
)
def test_infer_paths(path: str, params: dict[str, str] | None) -> None:
    assert infer_path_params(path) == params
