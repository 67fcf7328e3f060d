"""Kernel selection of the native walker, for tests that check every kernel this CPU runs."""

from __future__ import annotations

from app.engine.walker import ISA_NAMES, TreeWalkEvaluator


def use_isa(walker: TreeWalkEvaluator, name: str) -> str:
    """Make `walker` use other kernels (never while other threads call raw): at most what
    this CPU runs. Returns the kernels now in use."""
    # The service always runs the best kernels; only tests switch, so this stays out of app/.
    return ISA_NAMES[walker._lib.tw_set_isa(walker._handle, ISA_NAMES.index(name))]
