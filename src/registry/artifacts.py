"""Which artifact store a location names: a directory, or ``s3://BUCKET/PREFIX``."""

from __future__ import annotations

from pathlib import Path

from registry.s3_store import S3ArtifactStore
from registry.store import ArtifactStore, FileArtifactStore

__all__ = ["open_store"]


def open_store(location: str | Path, *, cache_dir: Path | None = None) -> ArtifactStore:
    """The store at ``location``: ``s3://BUCKET/PREFIX`` (``cache_dir`` then holds the
    bounded local cache) or a directory."""
    text = str(location)
    if text.startswith("s3://"):
        if cache_dir is None:
            raise ValueError("an s3:// artifact store needs a local cache directory")
        return S3ArtifactStore.from_url(text, cache_dir=cache_dir)
    if "://" in text:
        raise ValueError(f"artifact store {text!r}: expected s3://BUCKET/PREFIX or a directory")
    return FileArtifactStore(Path(location))
