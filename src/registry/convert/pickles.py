"""Scanning a pickle or joblib file before anything in it is unpickled.

A pickle is a program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes import callables and
``REDUCE`` calls them, so ``os.system`` in a pickle runs a shell command when it loads.
:func:`scan_pickle` lists every global a file imports and refuses any outside an
allow-list of the converters' own libraries, *before* the file is loaded for real.

How: the file runs on Python's pure pickle machine with :meth:`find_class` replaced, so
every global resolves to an inert stand-in class (nothing is imported; a "call" only
records its arguments). ``pickletools.genops`` alone cannot walk a joblib file: joblib
writes each numpy array's raw bytes into the middle of the pickle stream, and only the
array's pickled shape and dtype say how many bytes to skip — which the stand-ins record.
Compressed joblib files (zlib, gzip, bz2, xz, lzma) are read through their decompressor.

The allow-list (:data:`ALLOWED_ROOTS`, :data:`ALLOWED_GLOBALS`) covers what scikit-learn,
numpy, scipy, joblib, LightGBM and XGBoost models pickle to; an operator can name more
modules (``--allow-pickle-module``). :data:`ALWAYS_REFUSED` wins over both: process,
shell, import and file entry points are never allowed, whoever names them.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

__all__ = [
    "ALLOWED_GLOBALS",
    "ALLOWED_ROOTS",
    "ALWAYS_REFUSED",
    "PickleRefused",
    "PickleScan",
    "decompressed",
    "scan_pickle",
]

ALLOWED_ROOTS = frozenset({"sklearn", "numpy", "scipy", "joblib", "lightgbm", "xgboost"})
"""Modules (and their submodules) whose classes a converted model's pickle may import."""

ALLOWED_GLOBALS = frozenset(
    [
        # What those libraries' objects legitimately pickle to besides themselves.
        "copyreg._reconstructor",
        "_codecs.encode",  # bytes in protocol-2 pickles
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
        "collections.Counter",
    ]
    + [
        f"builtins.{name}"
        for name in "set frozenset slice complex bytearray bytes range object dict list tuple "
        "int float str bool".split()
    ]
)
"""Single globals allowed outside :data:`ALLOWED_ROOTS` (safe constructors)."""

ALWAYS_REFUSED = frozenset(
    "os posix nt subprocess _posixsubprocess sys importlib runpy shutil socket pty ctypes "
    "marshal pickle _pickle code codeop pdb webbrowser multiprocessing asyncio signal io _io "
    "pathlib urllib http commands popen2 platform tempfile threading".split()
)
"""Modules refused always, even when an operator names them."""

_REFUSED_BUILTINS = frozenset(
    "eval exec compile open __import__ getattr setattr delattr globals locals vars input "
    "breakpoint exit quit help memoryview type super classmethod staticmethod property".split()
)
# Names that run code, a shell or another pickle, even inside an allowed library
# (numpy.testing's runstring, numpy.load and joblib.load on a pickle, ...).
_REFUSED_NAMES = frozenset(
    "eval exec system popen spawn runstring exec_command load loads check_output check_call "
    "call run open __import__ getattr setattr".split()
)
_REFUSED_SUBMODULES = ("numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.ctypeslib")

# Compressed joblib files start with their compressor's magic bytes.
_ZLIB = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")
_GZIP = b"\x1f\x8b"
_BZ2 = b"BZh"
_XZ = b"\xfd7zXZ"
_LZMA = b"]\x00\x00"
_LZ4 = b"\x04\x22\x4d\x18"
_CHUNK = 1 << 20


class _Stream(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def readline(self, size: int = ..., /) -> bytes: ...


class PickleRefused(ValueError):
    """The file is not a pickle this registry will load (message: one line)."""


@dataclass(frozen=True)
class PickleScan:
    """What a pickle imports: every global (``module.name``), in first-use order."""

    globals: tuple[str, ...]
    compression: str  # "" (plain), "zlib", "gzip", "bz2", "xz", "lzma"
    joblib_arrays: int  # numpy arrays joblib wrote raw into the stream

    def describe(self) -> str:
        fmt = "joblib" if self.joblib_arrays or self.compression else "pickle"
        packed = f", {self.compression}" if self.compression else ""
        return f"{fmt}{packed}: {len(self.globals)} globals, all allowed"


def decompressed(raw: bytes) -> tuple[_Stream, str]:
    """A reader over the pickle stream in ``raw`` and the compression it was under."""
    head = raw[:6]
    if head.startswith(_LZ4):
        raise PickleRefused("lz4-compressed joblib files are not supported: re-dump without lz4")
    if head.startswith(_GZIP):
        return gzip.GzipFile(fileobj=io.BytesIO(raw)), "gzip"
    if head.startswith(_BZ2):
        return bz2.BZ2File(io.BytesIO(raw)), "bz2"
    if head.startswith(_XZ):
        return lzma.LZMAFile(io.BytesIO(raw), format=lzma.FORMAT_XZ), "xz"
    if head.startswith(_LZMA):
        return lzma.LZMAFile(io.BytesIO(raw), format=lzma.FORMAT_ALONE), "lzma"
    if head[:2] in _ZLIB:
        return _ZlibReader(raw), "zlib"
    return io.BytesIO(raw), ""


class _ZlibReader(io.RawIOBase):
    """A zlib stream read incrementally (a bomb is never inflated all at once)."""

    def __init__(self, raw: bytes) -> None:
        self._inflate = zlib.decompressobj()
        self._raw = raw
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = _CHUNK if size is None or size < 0 else size
        while len(self._buffer) < want and (self._raw or self._inflate.unconsumed_tail):
            data = self._inflate.unconsumed_tail or self._raw
            self._raw = b""
            try:
                self._buffer += self._inflate.decompress(data, want - len(self._buffer))
            except zlib.error as exc:
                raise PickleRefused(f"corrupt zlib stream: {exc}") from None
        out, self._buffer = self._buffer[:want], self._buffer[want:]
        return out

    def readline(self, size: int | None = -1) -> bytes:
        line = b""
        while not line.endswith(b"\n") and (c := self.read(1)):
            line += c
        return line


def _refusal(name: str, allow: frozenset[str]) -> bool:
    """Whether global ``name`` (``module.attr``) is refused under the extra ``allow``."""
    module, _, attr = name.rpartition(".")
    module = "builtins" if module == "__builtin__" else module
    root = module.split(".")[0]
    last = attr.rsplit(".", 1)[-1]
    if root in ALWAYS_REFUSED or (root == "builtins" and last in _REFUSED_BUILTINS):
        return True
    if f"{module}.{attr}" in ALLOWED_GLOBALS:
        return False
    if last in _REFUSED_NAMES or module.startswith(_REFUSED_SUBMODULES):
        return True
    allowed_here = root in ALLOWED_ROOTS or any(
        module == a or module.startswith(a + ".") or f"{module}.{attr}" == a for a in allow
    )
    return not allowed_here


class _Inert:
    """What every global resolves to during a scan: calling it records, never runs."""

    qualname: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass


_ARRAY_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"


class _Scanner(pickle._Unpickler):  # type: ignore[name-defined,misc]  # pure-Python machine
    """Python's pickle machine with inert globals and joblib's raw arrays skipped."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, stream: _Stream, seen: dict[str, None], arrays: list[int]) -> None:
        super().__init__(stream)
        self._stream = stream
        self._seen = seen
        self._arrays = arrays
        self._classes: dict[str, type[_Inert]] = {}

    def find_class(self, module: str, name: str) -> type[_Inert]:
        qualname = f"{module}.{name}"
        self._seen.setdefault(qualname)
        if qualname not in self._classes:
            self._classes[qualname] = type(name, (_Inert,), {"qualname": qualname})
        return self._classes[qualname]

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("the pickle refers to persistent ids (external objects)")

    def _build_then_skip_array(self) -> None:
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        top = self.stack[-1]  # type: ignore[attr-defined]
        if isinstance(top, _Inert) and top.qualname == _ARRAY_WRAPPER:
            self._skip_array(top.state if isinstance(top.state, dict) else {})

    dispatch[pickle.BUILD[0]] = _build_then_skip_array  # type: ignore[assignment]

    def _skip_array(self, state: dict[str, Any]) -> None:
        self._arrays.append(1)
        dtype = state.get("dtype")
        if not isinstance(dtype, _Inert) or not dtype.args or not isinstance(dtype.args[0], str):
            raise PickleRefused("a joblib array has no readable dtype")
        code = dtype.args[0]
        if code.startswith("O"):  # an object array: a nested pickle stream follows
            _Scanner(self._stream, self._seen, self._arrays).load()
            return
        size = _itemsize(code, dtype.state)
        for dim in state.get("shape", ()) or ():
            if not isinstance(dim, int) or dim < 0:
                raise PickleRefused("a joblib array has an invalid shape")
            size *= dim
        if state.get("numpy_array_alignment_bytes") is not None:
            pad = self._stream.read(1)
            size += int.from_bytes(pad, "little") if pad else 0
        while size > 0:  # skip in chunks: a claimed size is not allocated
            got = len(self._stream.read(min(size, _CHUNK)))
            if got == 0:
                raise PickleRefused("a joblib array's data is cut short")
            size -= got


def _itemsize(code: str, state: Any) -> int:
    if isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5]
    import numpy as np

    try:
        return int(np.dtype(code).itemsize)
    except TypeError:
        raise PickleRefused(f"a joblib array has an unknown dtype {code!r}") from None


def scan_pickle(raw: bytes, *, allow: Iterable[str] = ()) -> PickleScan:
    """Scan ``raw`` (a pickle or joblib file); :class:`PickleRefused` names what is refused
    and lists every global the file imports."""
    stream, compression = decompressed(raw)
    seen: dict[str, None] = {}
    arrays: list[int] = []
    try:
        _Scanner(stream, seen, arrays).load()
    except PickleRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed stream fails many ways
        raise PickleRefused(f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    names = tuple(seen)
    extra = frozenset(allow)
    refused = [n for n in names if _refusal(n, extra)]
    if refused:
        raise PickleRefused(
            f"refused global(s) {', '.join(refused)}; the file imports: {', '.join(names)} "
            "(name another module with --allow-pickle-module MODULE; os, subprocess, "
            "eval/exec and other process, import and file entry points are never allowed)"
        )
    return PickleScan(names, compression, len(arrays))
