"""The native tree walker as a shared library: compiled once per machine, cached, loaded.

The C source is compiled with the system C compiler into the compile cache, keyed by the
sha256 of the source, the flags, the compiler and the platform, so there is no per-model or
per-version compile; the library is loaded with ctypes and its ABI checked.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from app.engine.nodes import LANES

log = logging.getLogger("tierwise.scoring")

SOURCE = Path(__file__).with_name("treewalk.c")
_ABI = 1100 + LANES  # TW_ABI * 100 + TW_LANES
CFLAGS = ("-O2", "-std=c99", "-shared", "-fPIC", "-fno-fast-math", "-ffp-contract=off")


class BuildError(RuntimeError):
    """The C tree walker could not be compiled or loaded on this machine."""


_lib_lock = threading.Lock()
_libs: dict[str, ctypes.CDLL] = {}
_warned: set[str] = set()


def warn_once(key: str, message: str, *args: object) -> None:
    """Log a warning once per process for each key (fallbacks must not flood the log)."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def find_compiler(cc: str | None) -> str:
    """The C compiler to use: `cc`, else $TIERWISE_CC, $CC or cc; BuildError if absent."""
    name = cc or os.environ.get("TIERWISE_CC") or os.environ.get("CC") or "cc"
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"no C compiler: {name!r} is not on PATH")
    return path


def library_key(cc_path: str) -> str:
    """sha256 of everything that decides the shared object's content."""
    h = hashlib.sha256()
    h.update(SOURCE.read_bytes())
    h.update("\0".join((*CFLAGS, cc_path, platform.machine(), sys.platform)).encode())
    return h.hexdigest()


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.tw_abi.restype = ctypes.c_int
    lib.tw_abi.argtypes = []
    if lib.tw_abi() != _ABI:
        raise BuildError(f"{path} has ABI {lib.tw_abi()}, expected {_ABI}")
    p = ctypes.c_void_p
    i32 = ctypes.c_int32
    lib.tw_new.restype = p
    lib.tw_new.argtypes = [i32, i32, i32, p, i32, p, p, p, i32, p, i32, p, i32, p, p, p, p,
                           i32, p, p, i32, p, i32, p, p, p, p, p]
    lib.tw_isa.restype = ctypes.c_int
    lib.tw_isa.argtypes = [p]
    lib.tw_set_isa.restype = ctypes.c_int
    lib.tw_set_isa.argtypes = [p, i32]
    lib.tw_free.restype = None
    lib.tw_free.argtypes = [p]
    lib.tw_predict.restype = ctypes.c_int
    lib.tw_predict.argtypes = [p, p, ctypes.c_int64, p, ctypes.c_uint32]
    return lib



def load_library(cache_dir: Path | None, *, cc: str | None = None) -> ctypes.CDLL:
    """The compiled walker, from the cache or compiled now; raises BuildError."""
    cc_path = find_compiler(cc)
    key = library_key(cc_path)
    with _lib_lock:
        lib = _libs.get(key)
        if lib is not None:
            return lib
        private = cache_dir is None
        directory = (Path(tempfile.mkdtemp(prefix="tierwise-tw-")) if cache_dir is None
                     else Path(cache_dir))
        try:
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / f"treewalk-{key[:24]}.so"
            if not target.is_file():
                _compile(cc_path, target)
            try:
                lib = _load(target)
            except (OSError, BuildError):
                # A stale or damaged file: build again once.
                _compile(cc_path, target)
                lib = _load(target)
        except OSError as exc:
            raise BuildError(f"cannot use the compile cache {directory}: {exc}") from exc
        finally:
            if private:
                shutil.rmtree(directory, ignore_errors=True)  # mapped already, safe to delete
        _libs[key] = lib
        return lib


def _compile(cc_path: str, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    t0 = time.perf_counter()
    # A compiler without the x86 intrinsics or target attributes the vector batch kernels use
    # builds the portable walker instead (the same for a given compiler, so the key holds).
    first_error = ""
    for extra in ((), ("-DTW_PORTABLE",)):
        cmd = [cc_path, *CFLAGS, *extra, "-o", str(tmp), str(SOURCE), "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                                  check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise BuildError(f"{cc_path} could not run: {exc}") from exc
        if done.returncode == 0 and tmp.is_file():
            break
        tmp.unlink(missing_ok=True)
        if extra:  # the portable build failed too: the first error is the one that matters
            raise BuildError(f"{cc_path} failed ({done.returncode}): {first_error[:500]}")
        first_error = done.stderr.strip()
    if first_error:
        warn_once("portable", "the tree walker's vector batch kernels do not compile with %s, "
                   "built without them (batches are ~3x slower): %s", cc_path,
                   first_error[:300])
    os.replace(tmp, target)  # atomic: concurrent builders never see a partial file
    log.info("compiled the tree walker in %.2f s into %s", time.perf_counter() - t0, target)

