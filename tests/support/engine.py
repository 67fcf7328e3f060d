"""Native walker helpers for tests: kernel selection, and compile caches warmed by copying one
library built for the whole session (compiling takes 5-25 s on a busy 2-core machine)."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.engine import native
from app.engine.walker import ISA_NAMES, TreeWalkEvaluator


def use_isa(walker: TreeWalkEvaluator, name: str) -> str:
    """Make `walker` use other kernels (never while other threads call raw): at most what
    this CPU runs. Returns the kernels now in use."""
    # The service always runs the best kernels; only tests switch, so this stays out of app/.
    return ISA_NAMES[walker._lib.tw_set_isa(walker._handle, ISA_NAMES.index(name))]


def build_library(directory: Path) -> Path:
    """Compile the walker once into `directory`, named as the compile cache names it."""
    cc = native.find_compiler(None)
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = directory / f"treewalk-{native.library_key(cc)[:24]}.so"
    native.build(target, cc_path=cc)
    return target


def warm_cache(library: Path, directory: Path) -> Path:
    """`directory` as a compile cache holding a copy of `library` and its record (new files,
    mode 644, in a 755 directory, as a build leaves them): what a compile would have left
    there, without compiling. The copied library's path."""
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = directory / library.name
    for src, dst in ((library, target), (native.record_path(library), native.record_path(target))):
        shutil.copyfile(src, dst)  # a new inode: damaging the copy leaves the original whole
        dst.chmod(0o644)
    native.verify(target)
    return target
