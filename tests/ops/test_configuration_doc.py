"""docs/configuration.md carries the settings table generated from Settings, up to date."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import config_reference as ref
from app.cli import cli
from app.config import PROJECT_ROOT, Settings, get_settings

DOC = PROJECT_ROOT / "docs" / "configuration.md"


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_document_holds_the_current_generated_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert ref.generated_block(text) == ref.settings_markdown(), \
        "docs/configuration.md is stale: run `tierwise config --markdown --write " \
        "docs/configuration.md`"
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} needs a description"
        assert f"`{ref.env_name(name)}`" in text
    assert str(PROJECT_ROOT) not in text  # defaults are shown machine-independently


def test_cli_prints_and_writes_the_reference(tmp_path: Path) -> None:
    printed = CliRunner().invoke(cli, ["config", "--markdown"])
    assert printed.exit_code == 0 and printed.output == ref.settings_markdown()
    doc = tmp_path / "configuration.md"
    doc.write_text(f"# Title\n\nprose before\n\n{ref.BEGIN}\n| stale |\n{ref.END}\n\nafter\n")
    written = CliRunner().invoke(cli, ["config", "--markdown", "--write", str(doc)])
    assert written.exit_code == 0, written.output
    text = doc.read_text()
    assert text.startswith("# Title\n\nprose before\n\n") and text.endswith("after\n")
    assert ref.generated_block(text) == ref.settings_markdown() and "| stale |" not in text


def test_effective_settings_mask_the_database_password(monkeypatch: pytest.MonkeyPatch,
                                                       fresh_settings: None) -> None:
    monkeypatch.setenv("TIERWISE_DATABASE_URL", "postgresql+psycopg://tw:s3cret@db:5432/reg")
    monkeypatch.setenv("TIERWISE_LOG_LEVEL", "WARNING")
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert "TIERWISE_DATABASE_URL=postgresql+psycopg://tw:***@db:5432/reg" in result.output
    assert "TIERWISE_LOG_LEVEL=WARNING" in result.output
    assert len(result.output.splitlines()) == len(Settings.model_fields)


def test_effective_settings_mask_the_decision_secret(monkeypatch: pytest.MonkeyPatch,
                                                     fresh_settings: None) -> None:
    monkeypatch.setenv("TIERWISE_DECISION_SECRET", "forge-nothing-with-this-0123")
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0, result.output
    assert "forge-nothing" not in result.output
    assert "TIERWISE_DECISION_SECRET=***" in result.output
