"""The bootstrap admin key file is 0600: written so, even over a file that was there with a
looser mode, and tightened at any later start; a start that cannot tighten it is refused."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.registry.runtime import RegistryStartupError, open_runtime
from tests.registry import bundles as b


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}",
                    models_dir=b.write_models_dir(tmp_path / "models"), auth_enabled=True,
                    bootstrap_admin_key_file=tmp_path / "var" / "admin.key",
                    compile_models=False)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets every new file be read by anyone (the key file must not be)."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def start(settings: Settings) -> None:
    """What every start does (`tierwise serve` and each worker): open the registry."""
    open_runtime(settings, start_poller=False).close()


def test_the_first_start_writes_the_key_0600(settings: Settings, open_umask: None) -> None:
    start(settings)
    key_file = settings.bootstrap_admin_key_file
    assert _mode(key_file) == 0o600 and key_file.read_text().startswith("tw_")


def test_a_file_already_there_is_overwritten_0600(settings: Settings) -> None:
    key_file = settings.bootstrap_admin_key_file
    key_file.parent.mkdir()
    key_file.write_text("left over\n")
    key_file.chmod(0o644)
    start(settings)
    assert _mode(key_file) == 0o600 and key_file.read_text().startswith("tw_")


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o666, 0o700])
def test_a_later_start_tightens_a_loose_key_file(settings: Settings, loose: int,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    start(settings)
    key_file = settings.bootstrap_admin_key_file
    key = key_file.read_text()
    key_file.chmod(loose)
    with caplog.at_level(logging.WARNING, logger="tierwise.registry"):
        start(settings)
    assert _mode(key_file) == (0o600 if loose & 0o077 else loose)
    assert key_file.read_text() == key  # the same key, not a new one
    tightened = [r.getMessage() for r in caplog.records if "made it 0600" in r.getMessage()]
    assert tightened == ([f"the admin key file {key_file} had mode {loose:04o}; made it 0600"]
                         if loose & 0o077 else [])


def test_a_start_that_cannot_tighten_it_is_refused(settings: Settings,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    start(settings)
    key_file = settings.bootstrap_admin_key_file
    key_file.chmod(0o644)

    def refuse(self: Path, mode: int) -> None:  # as for a file another user owns
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(Path, "chmod", refuse)
    with pytest.raises(RegistryStartupError) as refused:
        start(settings)
    assert str(refused.value) == (
        f"the admin key file {key_file} has mode 0644 (others may read it) and cannot be "
        "made 0600: Operation not permitted; fix its permissions or remove it")
