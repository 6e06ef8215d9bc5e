"""Artifacts in an S3 bucket: a real S3-compatible server (moto_server on loopback, see
tests/s3_server.py), reached through boto3 with only the standard AWS environment.

Content addressing, verification at every load (a corrupt cached copy is fetched again, a
corrupt object refused), the bounded cache, and registration from a second working
directory that shares nothing with the reader but the registry URL and the bucket.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from s3_server import S3Server, _free_port
from shared import clear_onnxgate_env

from gateway import cli
from gateway.settings import Settings, SettingsError
from gateway.tools import modelzoo
from registry import open_registry
from registry.artifacts import open_store
from registry.errors import ArtifactIntegrityError, ArtifactStoreError
from registry.s3_store import S3ArtifactStore


@pytest.fixture
def bucket(s3_env: S3Server) -> str:
    return s3_env.new_bucket()


@pytest.fixture
def store(bucket: str, tmp_path: Path) -> S3ArtifactStore:
    made = open_store(f"s3://{bucket}/models/prod", cache_dir=tmp_path / "cache")
    assert isinstance(made, S3ArtifactStore)
    return made


def test_bytes_are_stored_under_their_sha256(store, s3_env, bucket):
    data = modelzoo.linear(seed=1)
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    body = s3_env.client().get_object(Bucket=bucket, Key=f"models/prod/sha256/{sha}")["Body"]
    assert body.read() == data
    assert store.put(data) == sha  # the same bytes twice: one object
    assert store.exists(sha) and store.shas() == [sha]
    assert store.read(sha) == data


def test_a_second_cache_reads_from_the_bucket(store, bucket, tmp_path):
    sha = store.put(modelzoo.linear(seed=2))
    other = open_store(f"s3://{bucket}/models/prod", cache_dir=tmp_path / "elsewhere")
    assert other.read(sha) == modelzoo.linear(seed=2)
    assert (tmp_path / "elsewhere" / sha[:2] / sha[2:]).is_file()  # now cached there


def test_a_corrupt_cached_copy_is_fetched_again(store):
    data = modelzoo.linear(seed=3)
    sha = store.put(data)
    cached = store.cache.path(sha)
    cached.write_bytes(b"not the model")
    assert store.read(sha) == data
    assert cached.read_bytes() == data  # the cache was repaired


def test_a_corrupt_object_is_refused_at_load(store, s3_env, bucket):
    sha = store.put(modelzoo.linear(seed=4))
    s3_env.client().put_object(Bucket=bucket, Key=store.key(sha), Body=b"tampered")
    store.cache.delete(sha)
    with pytest.raises(ArtifactIntegrityError, match="corrupt"):
        store.read(sha)
    assert not store.cache.exists(sha)  # bad bytes never reach the cache


def test_missing_and_deleted_artifacts(store):
    sha = store.put(modelzoo.linear(seed=5))
    store.delete(sha)
    assert not store.exists(sha) and store.shas() == []
    assert not store.cache.exists(sha)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        store.read(sha)
    store.delete(sha)  # missing: a no-op


def test_the_cache_stays_within_its_bound(bucket, tmp_path, s3_env):
    models = [modelzoo.linear(seed=s) for s in range(6)]
    bound = 2 * max(len(m) for m in models) + 10
    store = S3ArtifactStore(bucket, "p", cache_dir=tmp_path / "c", cache_bytes=bound)
    shas = [store.put(m) for m in models]
    assert store.cached_bytes() <= bound
    assert len(store.cache.shas()) < len(models)
    for sha, model in zip(shas, models, strict=True):
        assert store.read(sha) == model  # evicted ones come back from the bucket
        assert store.cached_bytes() <= bound
    tiny = S3ArtifactStore(bucket, "p", cache_dir=tmp_path / "t", cache_bytes=10)
    assert tiny.read(shas[0]) == models[0] and tiny.cache.shas() == []


def test_cache_bound_from_the_url(bucket, tmp_path, s3_env):
    store = open_store(f"s3://{bucket}/x?cache_mb=3", cache_dir=tmp_path / "c")
    assert isinstance(store, S3ArtifactStore) and store.cache_bytes == 3 << 20
    with pytest.raises(ValueError, match="unknown option"):
        open_store(f"s3://{bucket}/x?size=3", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="expected s3://"):
        open_store("gs://b/x", cache_dir=tmp_path / "c")


def test_an_unreachable_endpoint_is_one_clear_error(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    store = open_store(f"s3://{bucket}/p", cache_dir=tmp_path / "c")
    with pytest.raises(ArtifactStoreError, match=f"s3://{bucket}/p"):
        store.put(b"bytes")


def test_settings_take_the_store_from_the_environment():
    assert Settings.load({"ONNXGATE_ARTIFACT_STORE": "s3://b/p"}).artifact_store == "s3://b/p"
    with pytest.raises(SettingsError, match="artifact_store"):
        Settings.load({"ONNXGATE_ARTIFACT_STORE": "/mnt/models"})


def test_register_from_one_directory_serve_bytes_from_another(
    bucket, tmp_path, monkeypatch, capsys
):
    """`models register` in one working directory, a registry opened in another: they share
    only the registry URL and the bucket (no file system)."""
    clear_onnxgate_env(monkeypatch)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("ONNXGATE_REGISTRY", url)
    monkeypatch.setenv("ONNXGATE_ARTIFACT_STORE", f"s3://{bucket}/fleet")
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    (laptop / "m.onnx").write_bytes(modelzoo.linear(4, 2, seed=7))
    monkeypatch.chdir(laptop)
    assert cli.main(["models", "register", "m", "m.onnx"]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    reg = open_registry(url, tmp_path / "pod-cache", f"s3://{bucket}/fleet")
    try:
        (version,) = reg.list_versions("m")
        assert reg.read_artifact("m", version.version) == modelzoo.linear(4, 2, seed=7)
    finally:
        reg.close()
    assert os.listdir(tmp_path / "pod-cache")  # the reader cached what it loaded
