"""Verify an untrusted bundle in a child process under resource limits.

A hostile bundle may find a way past the strict checks into LightGBM's C++ code (an abort,
a wild read) or make unpacking cost memory and time. So the archive is unpacked, parsed and
replayed in `python -m app.scoring.verification`, which sets its own limits (address space,
CPU seconds, open files, size of files written) before reading anything, and answers with
one JSON verdict on stdout: no pickle crosses, only bytes in and JSON out. A child that dies
of a signal or passes a limit is a refusal naming it; the caller's process is untouched.

No network: the child first moves into a new network namespace (app/scoring/isolation.py),
then sets its limits, then reads the archive. Isolation comes first because unshare() needs
a single-threaded process that still holds its privileges (nothing is imported yet that
starts a thread), and once in a new user namespace a root child has lost the capability to
raise its limits again. Where isolation is unavailable the child goes on without it and says
so (`Verdict.network_isolated`); with `require_network_isolation` it refuses to read the
archive instead, and the parent refuses at once when the start-up probe found none.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass

from app.errors import BundleRejected, FieldProblem, PayloadTooLarge, TierwiseError
from app.scoring.isolation import isolate_network, network_isolation_available

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class VerifyLimits:
    """The resources one verification may use (TIERWISE_VERIFY_* settings)."""

    memory_mb: int = 2048
    cpu_seconds: int = 60
    wall_seconds: float = 120.0
    open_files: int = 64
    file_size_mb: int = 1
    max_bytes: int = 64 * MiB
    require_network_isolation: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the child found: the bundle's family and identity, and whether it verified
    without network access."""

    family: str
    sha256: str
    network_isolated: bool


class IsolationUnavailable(TierwiseError):
    """TIERWISE_VERIFY_REQUIRE_NETWORK_ISOLATION is set and this host cannot isolate the
    verification child from the network: nothing was verified, retry on a host that can."""

    status = 503
    code = "verification_isolation_unavailable"


def _refusal(message: str, problem: str) -> BundleRejected:
    return BundleRejected(message, [FieldProblem("bundle", problem)])


def verify_archive(archive: bytes, limits: VerifyLimits) -> Verdict:
    """Unpack and verify `archive` in a child process; BundleRejected naming the failed check,
    IsolationUnavailable (503) when isolation is required and this host has none."""
    if len(archive) > limits.max_bytes:
        raise PayloadTooLarge(f"the bundle is larger than {limits.max_bytes} bytes")
    if limits.require_network_isolation:
        probe = network_isolation_available()
        if not probe.isolated:  # known at start: refuse before spawning the child
            raise _unisolated(probe.reason)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    args = [sys.executable, "-B", "-m", "app.scoring.verification", json.dumps({
        "memory_mb": limits.memory_mb, "cpu_seconds": limits.cpu_seconds,
        "open_files": limits.open_files, "file_size_mb": limits.file_size_mb,
        "max_bytes": limits.max_bytes,
        "require_network_isolation": limits.require_network_isolation})]
    try:
        done = subprocess.run(args, input=archive, capture_output=True, env=env,
                              timeout=limits.wall_seconds, check=False)
    except subprocess.TimeoutExpired:
        raise _refusal(f"verification exceeded {limits.wall_seconds:g} s",
                       "the verifying process was stopped") from None
    if done.returncode < 0:
        sig = signal.Signals(-done.returncode)
        if sig == signal.SIGXCPU:
            raise _refusal(f"verification exceeded {limits.cpu_seconds} CPU seconds",
                           "the verifying process was stopped (SIGXCPU)")
        raise _refusal(f"verification crashed: {sig.name}",
                       f"the verifying process died of {sig.name}")
    try:
        verdict = json.loads(done.stdout.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError):
        if b"MemoryError" in done.stderr:
            raise _refusal(f"verification exceeded {limits.memory_mb} MB",
                           "the verifying process ran out of address space") from None
        raise _refusal("verification crashed: no verdict",
                       f"exit status {done.returncode}: "
                       + done.stderr.decode("utf-8", "replace")[-300:]) from None
    if verdict.get("ok"):
        return Verdict(family=str(verdict["family"]), sha256=str(verdict["sha256"]),
                       network_isolated=verdict.get("network_isolated") is True)
    details = [FieldProblem(str(d["field"]), str(d["problem"])) for d in verdict["details"]]
    error: type[TierwiseError] = {PayloadTooLarge.code: PayloadTooLarge,
                                  IsolationUnavailable.code: IsolationUnavailable,
                                  }.get(verdict["code"], BundleRejected)
    raise error(str(verdict["message"]), details)


def _unisolated(reason: str) -> IsolationUnavailable:
    return IsolationUnavailable(
        "bundle verification requires network isolation, which this host cannot provide",
        [FieldProblem("verification", reason or "no network namespace"),
         FieldProblem("TIERWISE_VERIFY_REQUIRE_NETWORK_ISOLATION", "is true")])


def _limit(kind: int, value: int) -> None:
    resource.setrlimit(kind, (value, value))


# Optional packages LightGBM imports when present; verification needs none of them, and
# importing them (scikit-learn above all) would double the child's start-up time.
_UNUSED = ("sklearn", "pandas", "dask", "pyarrow", "matplotlib", "graphviz", "polars")


def _child(limits: dict[str, int], archive: bytes) -> dict[str, object]:
    """Read and verify `archive` (after isolation and limits); the verdict without the
    network_isolated flag, which main() adds."""
    # Imported here, after the limits are set: this is the code a hostile bundle meets.
    for name in _UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not installed"
    from app.bundles.io import read_archive
    from app.scoring.loader import load_family

    try:
        bundle = read_archive(archive, max_bytes=limits["max_bytes"])
        load_family(bundle)
    except TierwiseError as exc:
        return {"ok": False, **exc.as_dict()}
    except MemoryError:
        return {"ok": False, "code": BundleRejected.code,
                "message": f"verification exceeded {limits['memory_mb']} MB",
                "details": [{"field": "bundle", "problem": "out of memory"}]}
    except RecursionError:
        return {"ok": False, "code": BundleRejected.code,
                "message": "verification exceeded the recursion limit",
                "details": [{"field": "bundle", "problem": "nested too deeply"}]}
    return {"ok": True, "family": bundle.family, "sha256": bundle.sha256}


def main() -> None:
    """The child: leave the network, set limits, read the archive from stdin, print one
    JSON verdict."""
    limits = json.loads(sys.argv[1])
    isolation = isolate_network()  # first: needs one thread and its privileges (see above)
    _limit(resource.RLIMIT_AS, limits["memory_mb"] * MiB)
    _limit(resource.RLIMIT_CPU, limits["cpu_seconds"])
    _limit(resource.RLIMIT_NOFILE, limits["open_files"])
    _limit(resource.RLIMIT_FSIZE, limits["file_size_mb"] * MiB)
    verdict: dict[str, object]
    if limits.get("require_network_isolation") and not isolation.isolated:
        verdict = {"ok": False, **_unisolated(isolation.reason).as_dict()}  # archive unread
    else:
        verdict = _child(limits, sys.stdin.buffer.read(limits["max_bytes"] + 1))
    verdict["network_isolated"] = isolation.isolated
    sys.stdout.write(json.dumps(verdict) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
