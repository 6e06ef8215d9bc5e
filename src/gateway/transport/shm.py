"""Triton's system shared memory extension: tensors passed by region, offset and size.

A same-host client creates a POSIX shared memory object (``/dev/shm/<key>``), registers a
window of it under a name, then names that region in an input's (or a requested output's)
parameters — ``shared_memory_region``, ``shared_memory_offset`` (within the region),
``shared_memory_byte_size`` — instead of sending the bytes. The gateway maps the window
once at registration; inputs are read from it and outputs written into it.

Bounds: at most :data:`MAX_REGIONS_PER_PRINCIPAL` regions per principal (the predict
token's, else ``anonymous``); a key is one file name directly under ``/dev/shm`` (no path
may escape it); every access stays inside its region. Regions are unmapped on unregister
and when the gateway stops.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import InvalidArgument, NotFound, ResourceExhausted
from gateway.messages import quoted

__all__ = ["MAX_REGIONS_PER_PRINCIPAL", "Region", "SharedMemoryRegions"]

SHM_DIR = Path("/dev/shm")
MAX_REGIONS_PER_PRINCIPAL = 64


@dataclass
class Region:
    """One registered window of a shared memory object."""

    name: str
    key: str
    offset: int
    byte_size: int
    owner: str
    map: mmap.mmap

    def _span(self, offset: int, size: int) -> int:
        if offset < 0 or size < 0 or offset + size > self.byte_size:
            raise InvalidArgument(
                f"shared memory region {quoted(self.name)}: {size} bytes at offset {offset} "
                f"do not fit its {self.byte_size} bytes"
            )
        return self.offset + offset

    def read(self, offset: int, size: int) -> bytes:
        """A copy of ``size`` bytes at ``offset`` within the region."""
        start = self._span(offset, size)
        return self.map[start : start + size]

    def write(self, offset: int, data: bytes) -> None:
        """Put ``data`` at ``offset`` within the region."""
        start = self._span(offset, len(data))
        self.map[start : start + len(data)] = data


class SharedMemoryRegions:
    """The registered regions of one gateway process."""

    def __init__(self, *, max_per_principal: int = MAX_REGIONS_PER_PRINCIPAL) -> None:
        self._regions: dict[str, Region] = {}
        self._max = max_per_principal

    def register(self, name: str, key: str, offset: int, byte_size: int, *, owner: str) -> None:
        if not name:
            raise InvalidArgument("a shared memory region needs a name")
        if name in self._regions:
            raise InvalidArgument(f"shared memory region {quoted(name)} is already registered")
        held = sum(1 for r in self._regions.values() if r.owner == owner)
        if held >= self._max:
            raise ResourceExhausted(
                f"principal {quoted(owner)} holds {held} shared memory regions (the most "
                "allowed); unregister one first",
                retry_after_s=None,
            )
        path = _path(key)
        if byte_size <= 0:
            raise InvalidArgument("shared memory byte_size must be > 0")
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise InvalidArgument(
                f"shared memory key {quoted(key)} cannot be opened ({exc.strerror})"
            ) from None
        try:
            total = os.fstat(fd).st_size
            if offset + byte_size > total:
                raise InvalidArgument(
                    f"shared memory key {quoted(key)} has {total} bytes; offset {offset} + "
                    f"byte_size {byte_size} runs past its end"
                )
            mapped = mmap.mmap(fd, offset + byte_size)
        finally:
            os.close(fd)
        self._regions[name] = Region(name, key, offset, byte_size, owner, mapped)

    def get(self, name: str) -> Region:
        region = self._regions.get(name)
        if region is None:
            raise NotFound(f"shared memory region {quoted(name)} is not registered")
        return region

    def status(self, name: str = "") -> list[Region]:
        """Every region, or the one named (NotFound when it is not registered)."""
        return [self.get(name)] if name else list(self._regions.values())

    def unregister(self, name: str = "") -> None:
        """Unregister ``name``, or every region when ``name`` is empty."""
        names = [name] if name else list(self._regions)
        for each in names:
            region = self._regions.pop(each, None)
            if region is not None:
                _close(region)

    def close(self) -> None:
        self.unregister()


def _path(key: str) -> Path:
    name = key[1:] if key.startswith("/") else key
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise InvalidArgument(
            f"shared memory key {quoted(key)} must name one object under /dev/shm"
        )
    return SHM_DIR / name


def _close(region: Region) -> None:
    region.map.close()  # reads and writes copy, so no view of it outlives a call
