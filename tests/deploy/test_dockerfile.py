"""No Docker engine runs here: check that what the Dockerfile copies and runs exists, and that
it installs from the lock files (tests/deploy/test_wheel.py runs the same kind of install)."""

from __future__ import annotations

import json
import re
import shlex
import sys

from typer.testing import CliRunner

from app.cli import cli
from app.config import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")


def _instructions(name: str, text: str = DOCKERFILE) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    return [line.split(None, 1)[1] for line in joined.splitlines()
            if line.strip().upper().startswith(name + " ")]


def _stages() -> dict[str, str]:
    """Stage name -> its instructions (FROM ... AS name)."""
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", DOCKERFILE, flags=re.M | re.I)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _pip_commands(text: str) -> list[list[str]]:
    commands = []
    for run in _instructions("RUN", text):
        for command in re.split(r"&&|;", run):
            argv = shlex.split(command)
            if argv and (argv[0].endswith("/pip") or argv[:3][-2:] == ["-m", "pip"]):
                commands.append(argv)
    return commands


def test_copied_sources_exist() -> None:
    for args in _instructions("COPY"):
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        if any(a.startswith("--from") for a in shlex.split(args)):
            continue
        for src in parts[:-1]:
            assert (PROJECT_ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_runs_tierwise_serve_on_all_interfaces_as_non_root() -> None:
    (cmd,) = _instructions("CMD")
    argv = json.loads(cmd)  # exec (JSON-array) form
    assert argv[:2] == ["tierwise", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "--host" in result.output and "--workers" in result.output
    users = _instructions("USER")
    assert users and users[-1].strip() not in ("root", "0")
    (health,) = _instructions("HEALTHCHECK")
    assert "/healthz" in health


def test_builds_a_wheel_and_installs_only_locked_versions() -> None:
    stages = _stages()
    assert list(stages) == ["build", "runtime"]
    pips = _pip_commands(stages["build"])
    installs = [argv for argv in pips if "install" in argv]
    locks = [argv[argv.index("-r") + 1] for argv in installs if "-r" in argv]
    assert "requirements/runtime.lock" in locks and "requirements/build.lock" in locks
    for argv in installs:
        assert "--no-deps" in argv, argv  # nothing resolved at build time
        assert "-e" not in argv and "--editable" not in argv, argv
        if "-r" in argv:
            lock = argv[argv.index("-r") + 1]
            assert "--require-hashes" in argv and lock.endswith(".lock"), argv
            assert (PROJECT_ROOT / lock).is_file(), f"Dockerfile installs missing {lock}"
        else:
            assert [a for a in argv if a.endswith(".whl")], f"not a lock or the wheel: {argv}"
    (wheel,) = [argv for argv in pips if "wheel" in argv]
    assert "--no-build-isolation" in wheel and "--no-deps" in wheel  # backend from build.lock
    runtime = stages["runtime"]
    assert not _pip_commands(runtime), "the runtime stage installs nothing itself"
    copied = [args for args in _instructions("COPY", runtime) if "--from=build" in args]
    (venv,) = [shlex.split(args)[-1] for args in copied]
    (path,) = [args for args in _instructions("ENV", runtime) if "PATH=" in args]
    assert f"PATH={venv}/bin:" in path


COMPILERS = ("gcc", "g++", "cc", "clang", "tcc", "libc6-dev", "build-essential", "cpp")


def _apt_packages(text: str) -> list[str]:
    packages = []
    for run in _instructions("RUN", text):
        for command in re.split(r"&&|;", run):
            argv = shlex.split(command)
            if argv[:2] == ["apt-get", "install"]:
                packages += [a for a in argv[2:] if not a.startswith("-")]
    return packages


def test_the_runtime_stage_has_no_compiler_and_serves_on_the_walker_built_ahead() -> None:
    from app.engine import native

    stages = _stages()
    runtime_packages = _apt_packages(stages["runtime"])
    assert "libgomp1" in runtime_packages
    assert not [p for p in runtime_packages
                if p in COMPILERS or p.startswith(("gcc-", "clang-", "g++-"))], runtime_packages
    copied = [shlex.split(a) for a in _instructions("COPY", stages["runtime"])]
    assert [c[-2:] for c in copied if "--from=build" in c] == [["/opt/tierwise", "/opt/tierwise"]]
    assert "TIERWISE_CC" not in stages["runtime"] and "TIERWISE_WALKER_DIR" not in DOCKERFILE

    # The build stage has the compiler and builds the walker into the virtualenv, after the
    # wheel is installed there; the default place is inside the copied virtualenv.
    build = stages["build"]
    assert {"gcc", "libc6-dev"} <= set(_apt_packages(build))
    runs = _instructions("RUN", build)
    walker = [i for i, r in enumerate(runs) if "tierwise walker build" in r]
    wheel = [i for i, r in enumerate(runs) if ".whl" in r]
    assert walker and wheel and walker[0] > wheel[-1]
    argv = shlex.split(runs[walker[0]])
    assert argv[0] == "/opt/tierwise/bin/tierwise" and "--out" not in argv
    assert CliRunner().invoke(cli, [*argv[1:], "--help"]).exit_code == 0
    relative = native.walker_dir().relative_to(sys.prefix)  # inside the installation
    assert not relative.is_absolute() and ".." not in relative.parts

    # The image build fails unless the walker serves there, checked as the service's user.
    lines = [line.strip() for line in re.sub(r"\\\n", " ", stages["runtime"]).splitlines()
             if line.strip() and not line.strip().startswith("#")]
    user = next(i for i, line in enumerate(lines) if line.upper().startswith("USER "))
    checks = [i for i, line in enumerate(lines)
              if line.startswith("RUN") and "tierwise walker check" in line]
    assert checks and checks[0] > user
    assert CliRunner().invoke(cli, ["walker", "check", "--help"]).exit_code == 0
