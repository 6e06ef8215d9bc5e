"""Triton's system shared memory extension: tensors passed by region, offset and size.

A same-host client creates a POSIX shared memory object (``/dev/shm/<key>``), registers a
window of it under a name, then names that region in an input's (or a requested output's)
parameters — ``shared_memory_region``, ``shared_memory_offset`` (within the region),
``shared_memory_byte_size`` — instead of sending the bytes. The gateway maps the window
once at registration; inputs are read from it and outputs written into it.

Each principal (the predict token's, else ``anonymous``) has its own namespace of region
names: another principal can neither see, use nor unregister its regions, and two clients
that both register Triton's example names (``input_data``...) do not collide. Bounds: at
most :data:`MAX_REGIONS_PER_PRINCIPAL` regions per principal; a key is one file name
directly under ``/dev/shm`` (no path may escape it); every access stays inside its region.
Regions are unmapped on unregister and when the gateway stops.

Both faces share one :class:`SharedMemoryRegions` (a region registered over gRPC is usable
over HTTP by the same principal, as in Triton): :mod:`.shm_wire` moves gRPC's tensors, the
HTTP codec reads the same three parameters from JSON with :func:`window`.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import InvalidArgument, NotFound, ResourceExhausted
from gateway.messages import quoted

__all__ = [
    "MAX_REGIONS_PER_PRINCIPAL",
    "OFFSET",
    "REGION",
    "SIZE",
    "Region",
    "SharedMemoryRegions",
    "Window",
    "window",
]

REGION = "shared_memory_region"
SIZE = "shared_memory_byte_size"
OFFSET = "shared_memory_offset"

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


@dataclass(frozen=True, slots=True)
class Window:
    """Where a tensor lives (input) or goes (output): ``size`` bytes at ``offset`` of a
    registered region."""

    region: str
    size: int
    offset: int


def window(where: str, params: Mapping[str, object]) -> Window | None:
    """The window a tensor's JSON parameters name, or None when they name no region."""
    region = params.get(REGION)
    if region is None:
        return None
    if not isinstance(region, str) or not region:
        raise InvalidArgument(f"{where}: '{REGION}' must be a region name")
    counts = []
    for key, default in ((SIZE, None), (OFFSET, 0)):
        value = params.get(key, default)
        if value is None:
            raise InvalidArgument(f"{where}: '{REGION}' given without '{SIZE}'")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"{where}: '{key}' must be a byte count")
        counts.append(value)
    return Window(region, counts[0], counts[1])


class SharedMemoryRegions:
    """The registered regions of one gateway process, by owner then name."""

    def __init__(self, *, max_per_principal: int = MAX_REGIONS_PER_PRINCIPAL) -> None:
        self._regions: dict[str, dict[str, Region]] = {}
        self._max = max_per_principal

    def register(self, name: str, key: str, offset: int, byte_size: int, *, owner: str) -> None:
        if not name:
            raise InvalidArgument("a shared memory region needs a name")
        own = self._regions.get(owner, {})
        if name in own:
            raise InvalidArgument(f"shared memory region {quoted(name)} is already registered")
        held = len(own)
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
        self._regions.setdefault(owner, {})[name] = Region(
            name, key, offset, byte_size, owner, mapped
        )

    def get(self, name: str, *, owner: str) -> Region:
        """``owner``'s region ``name``; NotFound for any other principal's."""
        region = self._regions.get(owner, {}).get(name)
        if region is None:
            raise NotFound(f"shared memory region {quoted(name)} is not registered")
        return region

    def read(self, at: Window, *, owner: str) -> bytes:
        """A copy of the bytes in the window (an input's tensor)."""
        return self.get(at.region, owner=owner).read(at.offset, at.size)

    def write(self, output: str, at: Window, data: bytes, *, owner: str) -> None:
        """Put an output's ``data`` in its window, refused when the window is too small."""
        region = self.get(at.region, owner=owner)
        if len(data) > at.size:
            raise InvalidArgument(
                f"output {quoted(output)} is {len(data)} bytes; its shared memory "
                f"window holds {at.size}"
            )
        region.write(at.offset, data)

    def status(self, name: str = "", *, owner: str) -> list[Region]:
        """``owner``'s regions, or the one named (NotFound when it is not registered)."""
        if name:
            return [self.get(name, owner=owner)]
        return list(self._regions.get(owner, {}).values())

    def unregister(self, name: str = "", *, owner: str) -> None:
        """Unregister ``owner``'s region ``name``, or all of ``owner``'s when ``name`` is
        empty (Triton's meaning, within the caller's own namespace)."""
        own = self._regions.get(owner, {})
        for each in [name] if name else list(own):
            region = own.pop(each, None)
            if region is not None:
                _close(region)
        if not own:
            self._regions.pop(owner, None)

    def close(self) -> None:
        """Unmap every principal's regions (the gateway is stopping)."""
        for owner in list(self._regions):
            self.unregister(owner=owner)


def _path(key: str) -> Path:
    name = key[1:] if key.startswith("/") else key
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise InvalidArgument(
            f"shared memory key {quoted(key)} must name one object under /dev/shm"
        )
    return SHM_DIR / name


def _close(region: Region) -> None:
    region.map.close()  # reads and writes copy, so no view of it outlives a call
