"""The native tree walker as a shared library: built once, verified, loaded.

The C source is compiled with the system C compiler, either ahead of time (`tierwise walker
build`, run at install or image build, into the walker directory) or at first start into the
compile cache, keyed by the sha256 of the source, the flags, the compiler and the platform.
Each library has a record next to it (sha256, size, source sha256, compiler, flags); before
a library is loaded its bytes must match the record and both must be regular files owned by
this user (or root), not writable by group or others, in a directory with the same
properties. A file that fails is rebuilt when a compiler exists, else refused: never loaded
(a truncated library kills the process with SIGBUS, a foreign one runs its code).

The library holds the tree attributions of treeshap.c too (app/engine/attributions.py):
both sources are compiled into it, and its record's source sha256 covers both.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from app.engine.nodes import LANES

log = logging.getLogger("tierwise.scoring")

SOURCE = Path(__file__).with_name("treewalk.c")
# Compiled into the same library (one build, one record, one trust check): tree attributions.
SOURCES = (SOURCE, Path(__file__).with_name("treeshap.c"))
_ABI = 1100 + LANES  # TW_ABI * 100 + TW_LANES
CFLAGS = ("-O2", "-std=c99", "-shared", "-fPIC", "-fno-fast-math", "-ffp-contract=off")
RECORD_FORMAT = 1
PREBUILT_NAME = "treewalk.so"  # in the walker directory; its record is treewalk.json


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


def walker_dir() -> Path:
    """Where `tierwise walker build` puts the walker: $TIERWISE_WALKER_DIR, else inside the
    installation (sys.prefix/lib/tierwise/walker), so it travels with a copied virtualenv."""
    env = os.environ.get("TIERWISE_WALKER_DIR")
    return Path(env) if env else Path(sys.prefix) / "lib" / "tierwise" / "walker"


def source_sha256() -> str:
    """sha256 of the C sources this installation carries (treewalk.c, then treeshap.c)."""
    h = hashlib.sha256()
    for source in SOURCES:
        h.update(source.read_bytes())
    return h.hexdigest()


def library_key(cc_path: str) -> str:
    """sha256 of everything that decides the shared object's content."""
    h = hashlib.sha256()
    for source in SOURCES:
        h.update(source.read_bytes())
    h.update("\0".join((*CFLAGS, cc_path, platform.machine(), sys.platform)).encode())
    return h.hexdigest()


def record_path(library: Path) -> Path:
    """The record written next to a library when it was built."""
    return library.with_suffix(".json")


def _trusted(st: os.stat_result, what: str, *, directory: bool = False) -> None:
    """Refuse anything another user could have written (owner this user or root, no group or
    other write bit), so checking once and then loading is as good as loading what we built."""
    kind = stat.S_ISDIR if directory else stat.S_ISREG
    if not kind(st.st_mode):
        raise BuildError(f"{what} is not a {'directory' if directory else 'regular file'}")
    if st.st_uid not in (os.geteuid(), 0):
        raise BuildError(f"{what} is owned by uid {st.st_uid}, not by this user or root")
    if st.st_mode & 0o022:
        raise BuildError(f"{what} is writable by group or others "
                         f"(mode {stat.S_IMODE(st.st_mode):o})")


def _read_trusted(path: Path) -> tuple[int, os.stat_result]:
    """An O_NOFOLLOW descriptor on a trusted regular file in a trusted directory."""
    try:
        _trusted(os.stat(path.parent), str(path.parent), directory=True)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BuildError(f"cannot open {path}: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    try:
        _trusted(st, str(path))
    except BuildError:
        os.close(fd)
        raise
    return fd, st


def read_record(library: Path) -> dict[str, Any]:
    """The library's record, checked like the library; BuildError when missing or invalid."""
    fd, st = _read_trusted(record_path(library))
    try:
        if st.st_size > 65536:
            raise BuildError(f"{record_path(library)} is too large for a record")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = json.loads(fh.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BuildError(f"{record_path(library)} is not a valid record: {exc}") from exc
    finally:
        os.close(fd)
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise BuildError(f"{record_path(library)} is not a walker record")
    return data


def verify(library: Path) -> dict[str, Any]:
    """Check `library` against its record (sha256, size, source, ABI, platform) and both
    files' ownership and modes; the record, or BuildError saying what is wrong."""
    record = read_record(library)
    want = {"source_sha256": source_sha256(), "abi": _ABI, "machine": platform.machine(),
            "platform": sys.platform}
    for field, value in want.items():
        if record.get(field) != value:
            raise BuildError(f"{library} was built for {field} {record.get(field)!r}, "
                             f"not {value!r}")
    fd, st = _read_trusted(library)
    try:
        if st.st_size != record.get("size"):
            raise BuildError(f"{library} has {st.st_size} bytes, its record says "
                             f"{record.get('size')} (truncated or replaced)")
        h = hashlib.sha256()
        with os.fdopen(os.dup(fd), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != record.get("sha256"):
            raise BuildError(f"{library} does not match the sha256 of its record")
    finally:
        os.close(fd)
    return record


def _bind(lib: ctypes.CDLL, path: Path) -> ctypes.CDLL:
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
    _bind_attributions(lib, path)
    return lib


TS_ABI = 1  # TS_ABI in treeshap.c


def _bind_attributions(lib: ctypes.CDLL, path: Path) -> None:
    """The tree attribution functions of treeshap.c (app/engine/attributions.py)."""
    lib.ts_abi.restype = ctypes.c_int
    lib.ts_abi.argtypes = []
    if lib.ts_abi() != TS_ABI:
        raise BuildError(f"{path} has attribution ABI {lib.ts_abi()}, expected {TS_ABI}")
    p, i32 = ctypes.c_void_p, ctypes.c_int32
    lib.ts_new.restype = p
    lib.ts_new.argtypes = [i32, i32, p, p, p, p, i32, p, p, p, i32, p, i32, i32, p]
    lib.ts_free.restype = None
    lib.ts_free.argtypes = [p]
    lib.ts_contrib.restype = ctypes.c_int
    lib.ts_contrib.argtypes = [p, p, ctypes.c_int64, p, p]


def _load_verified(library: Path, refusals: list[str], *, key: str | None = None,
                   ) -> ctypes.CDLL | None:
    """The library if it verifies, else None (the reason appended and logged once)."""
    if not os.path.lexists(library):
        return None
    try:
        record = verify(library)
        if key is not None and record.get("key") != key:
            raise BuildError(f"{library} was built by another compiler ({record.get('compiler')})")
        lib = _libs.get(record["sha256"])
        if lib is None:
            lib = _libs[record["sha256"]] = _bind(ctypes.CDLL(str(library)), library)
        return lib
    except (BuildError, OSError) as exc:
        refusals.append(str(exc))
        warn_once(f"refused:{library}", "not loading the tree walker %s: %s", library, exc)
        return None


def load_library(cache_dir: Path | None, *, cc: str | None = None) -> ctypes.CDLL:
    """The walker: the verified ahead-of-time build, else the verified compile cache entry,
    else compiled now (when `cc` is given, only that compiler's build); raises BuildError."""
    refusals: list[str] = []
    with _lib_lock:
        if cc is None:
            lib = _load_verified(walker_dir() / PREBUILT_NAME, refusals)
            if lib is not None:
                return lib
        try:
            cc_path = find_compiler(cc)
        except BuildError as exc:
            # No compiler: a verified library of this source built here earlier still serves.
            if cache_dir is not None and Path(cache_dir).is_dir():
                for library in sorted(Path(cache_dir).glob("treewalk-*.so")):
                    if (lib := _load_verified(library, refusals)) is not None:
                        return lib
            raise BuildError("; ".join([str(exc), *refusals])) from exc
        return _cached_or_built(cache_dir, cc_path, refusals)


def _cached_or_built(cache_dir: Path | None, cc_path: str, refusals: list[str]) -> ctypes.CDLL:
    key = library_key(cc_path)
    private = cache_dir is None
    directory = (Path(tempfile.mkdtemp(prefix="tierwise-tw-")) if cache_dir is None
                 else Path(cache_dir))
    try:
        if not private:
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            try:
                _trusted(os.stat(directory), str(directory), directory=True)
            except BuildError as exc:  # a cache others may write is never read: build aside
                warn_once(f"cache:{directory}", "not using the compile cache: %s", exc)
                return _cached_or_built(None, cc_path, refusals)
        target = directory / f"treewalk-{key[:24]}.so"
        if not private and (lib := _load_verified(target, refusals, key=key)) is not None:
            return lib
        build(target, cc_path=cc_path)
        lib = _load_verified(target, refusals, key=key)
        if lib is None:
            raise BuildError(f"the tree walker just built does not verify: {refusals[-1]}")
        return lib
    except OSError as exc:
        raise BuildError(f"cannot use the compile cache {directory}: {exc}") from exc
    finally:
        if private:
            shutil.rmtree(directory, ignore_errors=True)  # mapped already, safe to delete


def build(target: Path, *, cc_path: str) -> dict[str, Any]:
    """Compile the walker into `target` (atomically) and write its record; the record."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    flags = _compile(cc_path, tmp)
    os.chmod(tmp, 0o644)  # whatever the umask: a group-writable library would be refused
    data = tmp.read_bytes()
    record: dict[str, Any] = {
        "format": RECORD_FORMAT, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "source_sha256": source_sha256(), "compiler": cc_path, "flags": flags,
        "key": library_key(cc_path), "abi": _ABI, "machine": platform.machine(),
        "platform": sys.platform,
    }
    rec_tmp = tmp.with_suffix(".json.tmp")
    fd = os.open(rec_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o644)
        json.dump(record, fh, indent=2)
    # The library first: a reader between the two sees a mismatch and rebuilds, never a match.
    os.replace(tmp, target)
    os.replace(rec_tmp, record_path(target))
    log.info("the tree walker is in %s (sha256 %s)", target, record["sha256"][:16])
    return record


def _compile(cc_path: str, tmp: Path) -> list[str]:
    t0 = time.perf_counter()
    # A compiler without the x86 intrinsics or target attributes the vector batch kernels use
    # builds the portable walker instead (the same for a given compiler, so the key holds).
    first_error = ""
    for extra in ((), ("-DTW_PORTABLE",)):
        cmd = [cc_path, *CFLAGS, *extra, "-o", str(tmp), *map(str, SOURCES), "-lm"]
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
    log.info("compiled the tree walker in %.2f s", time.perf_counter() - t0)
    return [*CFLAGS, *extra]
