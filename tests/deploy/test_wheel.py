"""The wheel carries what the service needs at run time and serves outside the checkout.

The wheel is built with the locked build backend, installed with `--no-deps` into a fresh
virtualenv whose only other packages are .venv's (a .pth line, so nothing is resolved or
downloaded), and started from a temporary directory with no TIERWISE_* settings: it must
migrate and seed an embedded SQLite registry from the bundles inside the package, and score
the README's example customer.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.bundles.manifest import FAMILIES
from app.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

READY_DEADLINE_S = 45.0
VERSION = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]


def _checkout_files(top: str) -> set[str]:
    root = PROJECT_ROOT / top
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def _readme_customer() -> dict[str, Any]:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<<'JSON'\n(.*?)\nJSON\n", text, re.S)
    assert match, "README.md has no example request (a heredoc ending in JSON)"
    body: dict[str, Any] = json.loads(match.group(1))
    return body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from the checkout by the locked backend (no build isolation)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(out), str(PROJECT_ROOT)],
                   check=True, timeout=120)
    (built,) = out.glob("tierwise-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed and .venv's packages visible."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=60)
    python = root / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--quiet", "--no-deps", "--no-index", str(wheel)], check=True, timeout=120)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    # A plain path line: .venv's .pth files (the editable install's) are not processed.
    deps = sysconfig.get_paths()["purelib"]
    (Path(site.stdout.strip()) / "tierwise-test-deps.pth").write_text(deps + "\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A working directory outside the checkout and an environment without our settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TIERWISE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    yield {"cwd": tmp_path, "env": env}


def test_the_wheel_holds_code_walker_source_migrations_and_bundles(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"app/{f}" for f in _checkout_files("app")} <= names
    assert "app/engine/treewalk.c" in names
    assert {f"app/_data/migrations/{f}" for f in _checkout_files("migrations")} <= names
    assert {f"app/_data/models/{f}" for f in _checkout_files("models")} <= names
    assert all(f"app/_data/models/{f}/manifest.json" in names for f in FAMILIES)
    assert not [n for n in names if n.startswith(("tests/", "bench/", "var/", "migrations/"))]


def test_installed_wheel_serves_and_scores_outside_the_checkout(
        venv: Path, outside: dict[str, Any]) -> None:
    bin_dir = venv / "bin"
    where = subprocess.run([str(bin_dir / "python"), "-c", "import app; print(app.__file__)"],
                           check=True, capture_output=True, text=True, **outside)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # not the checkout
    version = subprocess.run([str(bin_dir / "tierwise"), "--version"], check=True,
                             capture_output=True, text=True, **outside)
    assert version.stdout.strip() == f"tierwise {VERSION}"
    config = subprocess.run([str(bin_dir / "tierwise"), "config"], check=True,
                            capture_output=True, text=True, **outside).stdout
    models_dir = Path(re.search(r"^TIERWISE_MODELS_DIR=(.*)$", config, re.M)[1])  # type: ignore[index]
    assert models_dir.is_relative_to(venv) and models_dir.name == "models"

    port = _free_port()
    log = (outside["cwd"] / "serve.log").open("wb")
    server = subprocess.Popen([str(bin_dir / "tierwise"), "serve", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              **outside)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_DEADLINE_S
        while _get(f"{base}/readyz") != 200:
            assert server.poll() is None, (outside["cwd"] / "serve.log").read_text()
            assert time.monotonic() < deadline, (outside["cwd"] / "serve.log").read_text()
            time.sleep(0.2)
        var = outside["cwd"] / "var"
        assert (var / "registry.sqlite3").is_file()  # var/ under the working directory
        key = (var / "admin.key").read_text().strip()
        request = urllib.request.Request(
            f"{base}/v1/score", data=json.dumps(_readme_customer()).encode(), method="POST",
            headers={"X-API-Key": key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
            body = json.loads(resp.read())
        assert body["customer_id"] == "C000123"
        assert set(body["models"]) >= {"tier", "churn"}
        # The web pages and the documentation's files travel in the wheel too.
        for path in ("/ui/", "/ui/tierwise-card.js", "/ui/registry", "/docs",
                     "/ui/vendor/redoc.standalone.js"):
            assert _get(base + path) == 200, path
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_walker_built_into_the_install_serves_without_a_compiler(
        venv: Path, outside: dict[str, Any]) -> None:
    """As the image does: `tierwise walker build` once where a compiler is, then the service's
    evaluator is the verified walker with no compiler reachable and nothing compiled."""
    tierwise = str(venv / "bin" / "tierwise")
    built = subprocess.run([tierwise, "walker", "build"], capture_output=True, text=True,
                           timeout=180, check=False, **outside)
    assert built.returncode == 0, built.stderr
    assert (venv / "lib" / "tierwise" / "walker" / "treewalk.so").is_file(), built.stdout
    env = dict(outside["env"], PATH=str(venv / "bin"), TIERWISE_CC="/nonexistent/cc",
               CC="/nonexistent/cc")
    check = subprocess.run([tierwise, "walker", "check"], capture_output=True, text=True,
                           timeout=180, check=False, cwd=outside["cwd"], env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "compiler: none" in check.stdout and "evaluator: treewalk" in check.stdout
    assert f"{venv}/lib/tierwise/walker/treewalk.so (verified" in check.stdout
    assert not (outside["cwd"] / "var" / "compiled").exists()
