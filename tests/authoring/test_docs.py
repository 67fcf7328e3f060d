"""The examples of docs/authoring.md build, and the error example is what the tool prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.authoring.build import build_from_source
from app.cli import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "authoring.md"
EXAMPLES = re.findall(r"```yaml\n# source: (\w+)\n(.*?)```", DOC.read_text(), re.S)


def test_every_kind_has_an_example() -> None:
    assert sorted(kind for kind, _ in EXAMPLES) == ["catalog", "features", "policy"]


@pytest.mark.parametrize(("kind", "text"), EXAMPLES, ids=[k for k, _ in EXAMPLES])
def test_doc_examples_build(kind: str, text: str, tmp_path: Path) -> None:
    src = tmp_path / f"{kind}.yaml"
    src.write_text(text)
    bundle = build_from_source(kind, src)
    assert bundle.family == kind
    result = CliRunner().invoke(cli, ["bundle", "build", kind, str(src), "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 0, result.output


def test_doc_error_example_is_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = re.search(r"```\n(policy\.yaml:2:.*?)```", DOC.read_text(), re.S)
    assert shown is not None
    monkeypatch.chdir(tmp_path)
    Path("policy.yaml").write_text(
        "tiers:\n  - tier: Mass\n    min_aum: -1\nchurn_bands: []\nextra: 1\n")
    result = CliRunner().invoke(cli, ["bundle", "build", "policy", "policy.yaml", "--out", "out"])
    assert result.exit_code == 2
    assert result.output == shown.group(1)
