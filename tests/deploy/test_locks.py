"""The lock files pin every dependency exactly, agree with each other and with pyproject.toml,
and .venv is what the dev lock says (so the suite runs on the locked versions)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.config import PROJECT_ROOT

REQUIREMENTS = PROJECT_ROOT / "requirements"
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCKS = ("dev", "runtime", "build", "tools")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}(?:\s|$)")
_PIN = re.compile(r"^[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+$")


@dataclass(frozen=True)
class Pin:
    version: str
    marker: str | None
    hashes: int


def read_lock(path: Path) -> dict[str, Pin]:
    """name -> pin of a lock written by `uv pip compile --generate-hashes`."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    pins: dict[str, Pin] = {}
    for line in (ln.strip() for ln in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        head = line.split(" --hash=", 1)[0]
        spec, _, marker = head.partition(";")
        assert _PIN.match(spec.strip()), f"{path.name}: not an exact pin: {line[:80]}"
        name, _, pinned = spec.strip().partition("==")
        hashes = len(_HASH.findall(line))
        assert hashes == line.count("--hash="), f"{path.name}: malformed hash: {line[:80]}"
        pins[canonicalize_name(name)] = Pin(pinned, marker.strip() or None, hashes)
    return pins


@pytest.fixture(scope="module")
def locks() -> dict[str, dict[str, Pin]]:
    return {name: read_lock(REQUIREMENTS / f"{name}.lock") for name in LOCKS}


def _satisfied(requirements: list[str], pins: dict[str, Pin], where: str) -> None:
    for line in requirements:
        req = Requirement(line)
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is not in {where}"
        assert req.specifier.contains(pin.version, prereleases=True), \
            f"{where} pins {req.name}=={pin.version}, outside {req.specifier} (pyproject.toml)"


def test_every_entry_is_an_exact_version_with_hashes(locks: dict[str, dict[str, Pin]]) -> None:
    for name, pins in locks.items():
        assert pins, f"{name}.lock is empty"
        assert all(pin.hashes >= 1 for pin in pins.values()), f"{name}.lock has unhashed pins"


def test_locks_honour_the_tested_lower_bounds_in_pyproject(
        locks: dict[str, dict[str, Pin]]) -> None:
    runtime = PYPROJECT["project"]["dependencies"]
    _satisfied(runtime, locks["runtime"], "runtime.lock")
    _satisfied(runtime + PYPROJECT["project"]["optional-dependencies"]["dev"], locks["dev"],
               "dev.lock")
    _satisfied(PYPROJECT["build-system"]["requires"], locks["build"], "build.lock")


def test_runtime_and_build_locks_are_the_dev_lock_s_versions(
        locks: dict[str, dict[str, Pin]]) -> None:
    for name in ("runtime", "build"):
        for package, pin in locks[name].items():
            assert package in locks["dev"], f"{package} ({name}.lock) is not in dev.lock"
            assert locks["dev"][package].version == pin.version, \
                f"{package}: {name}.lock {pin.version}, dev.lock {locks['dev'][package].version}"


def test_build_in_asks_for_the_build_backend_of_pyproject() -> None:
    lines = [ln.strip() for ln in (REQUIREMENTS / "build.in").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert set(PYPROJECT["build-system"]["requires"]) <= set(lines)


def test_the_generated_client_s_runtime_and_the_generator_are_locked(
        locks: dict[str, dict[str, Pin]]) -> None:
    # What openapi-python-client's output imports must be importable from .venv.
    assert {"attrs", "httpx", "python-dateutil"} <= set(locks["dev"])
    assert "openapi-python-client" in locks["tools"]
    assert "openapi-python-client" not in locks["dev"]  # it caps typer below ours:
    assert locks["tools"]["typer"].version != locks["dev"]["typer"].version


def test_the_virtualenv_under_test_is_the_dev_lock(locks: dict[str, dict[str, Pin]]) -> None:
    wrong = []
    for package, pin in locks["dev"].items():
        if pin.marker and not Marker(pin.marker).evaluate():
            continue
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "missing"
        if installed != pin.version:
            wrong.append(f"{package} {installed} (lock: {pin.version})")
    assert not wrong, "`make venv` reinstalls from requirements/dev.lock: " + ", ".join(wrong)


def test_make_installs_from_the_locks() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    stamp_rule = re.search(r"^\$\(STAMP\):(.*)$", makefile, re.M)
    assert stamp_rule and "requirements/dev.lock" in stamp_rule[1].split()
    assert re.search(r"pip install .*--require-hashes --no-deps -r requirements/dev\.lock",
                     makefile)
    assert re.search(r"pip install .*--no-deps --no-build-isolation -e \.", makefile)
    tools_rule = re.search(r"^\$\(TOOLS_STAMP\):(.*)$", makefile, re.M)
    assert tools_rule and "requirements/tools.lock" in tools_rule[1].split()
    test_rule = re.search(r"^test:(.*)$", makefile, re.M)
    assert test_rule and {"$(STAMP)", "$(TOOLS_STAMP)"} <= set(test_rule[1].split())
