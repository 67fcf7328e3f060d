"""Network isolation of the verification child: a new, empty network namespace.

`isolate_network()` moves the calling process into a new network namespace, where the only
interface is a loopback that is down: no connection can leave, not even to 127.0.0.1 of the
host. It first asks for a new user namespace too (`CLONE_NEWUSER | CLONE_NEWNET`: works
unprivileged where user namespaces are enabled, and as root it also drops the capabilities
the process held over the host, so it can no longer raise its own resource limits), then
for the network namespace alone (root with CAP_SYS_ADMIN, user namespaces disabled). Where
neither works (non-Linux, a container without the capability, user namespaces off) it says
why and changes nothing: best effort, reported, never silent.

unshare() must run while the process is still single-threaded (CLONE_NEWUSER refuses a
multi-threaded caller with EINVAL): before NumPy, OpenBLAS or LightGBM are imported.

`network_isolation_available()` probes once, in a throwaway child (never in the serving
process, which must keep its network), whether verification children will be isolated.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache

log = logging.getLogger("tierwise.registry")

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True, slots=True)
class Isolation:
    """Whether this process now lives in its own network namespace, how, or why not."""

    isolated: bool
    how: str  # "user+net", "net", or "" when not isolated
    reason: str = ""


def _unshare(flags: int) -> str:
    """'' on success, else the error (errno text)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        unshare = libc.unshare
    except (OSError, AttributeError) as exc:
        return f"no unshare() in the C library ({exc})"
    unshare.argtypes = [ctypes.c_int]
    unshare.restype = ctypes.c_int
    if unshare(flags) == 0:
        return ""
    return os.strerror(ctypes.get_errno())


def isolate_network() -> Isolation:
    """Move this (single-threaded) process into a new network namespace, if the system lets
    it; see the module's docstring. Irreversible for the calling process."""
    if not sys.platform.startswith("linux"):
        return Isolation(False, "", f"network namespaces need Linux, not {sys.platform}")
    both = _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    if not both:
        return Isolation(True, "user+net")
    alone = _unshare(CLONE_NEWNET)
    if not alone:
        return Isolation(True, "net")
    return Isolation(False, "", f"unshare(CLONE_NEWUSER|CLONE_NEWNET): {both}; "
                                f"unshare(CLONE_NEWNET): {alone}")


@lru_cache(maxsize=1)
def network_isolation_available() -> Isolation:
    """Whether a verification child can isolate itself (probed once, in a child process)."""
    code = ("import json; from app.scoring.isolation import isolate_network as i; "
            "r = i(); print(json.dumps([r.isolated, r.how, r.reason]))")
    try:
        done = subprocess.run([sys.executable, "-B", "-c", code], capture_output=True,
                              timeout=30, check=False)
        isolated, how, reason = json.loads(done.stdout.decode().strip().splitlines()[-1])
        return Isolation(bool(isolated), str(how), str(reason))
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return Isolation(False, "", f"the probe failed: {exc}")


def log_network_isolation() -> Isolation:
    """Probe (once) and log whether pushed bundles are verified without network access."""
    found = network_isolation_available()
    if found.isolated:
        log.info("bundle verification runs without network access (namespace: %s)", found.how)
    else:
        log.warning("bundle verification runs WITH network access: %s (see docs/registry.md, "
                    "TIERWISE_VERIFY_REQUIRE_NETWORK_ISOLATION)", found.reason)
    return found
