"""The generated authoring files are current: docs/schemas/*.json and models/sources/*.yaml.

After a change to FeatureContract, Catalog, Policy or the defaults, regenerate them with
`PYTHONPATH=. python -m app.authoring.generate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.authoring import generate
from app.sources.sources import MODELS, load_source

KINDS = ("features", "catalog", "policy")


def test_generated_files_are_current() -> None:
    stale = [str(p.relative_to(generate.ROOT)) for p in generate.stale_files()]
    assert stale == [], "run `PYTHONPATH=. python -m app.authoring.generate`"


@pytest.mark.parametrize("kind", KINDS)
def test_schema_describes_the_model(kind: str) -> None:
    schema = json.loads((generate.SCHEMA_DIR / f"{kind}.schema.json").read_text())
    assert schema["$schema"] == generate.SCHEMA_URL
    assert set(schema["properties"]) == set(MODELS[kind].model_fields)
    assert schema["additionalProperties"] is False
    required = {n for n, f in MODELS[kind].model_fields.items() if f.is_required()}
    assert set(schema.get("required", [])) == required


@pytest.mark.parametrize("kind", KINDS)
def test_default_sources_validate(kind: str) -> None:
    path = generate.SOURCES_DIR / f"{kind}.yaml"
    text = path.read_text()
    assert text.startswith(f"# yaml-language-server: $schema=../../docs/schemas/{kind}.schema")
    assert load_source(path, kind) is not None


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(generate, "SCHEMA_DIR", tmp_path / "schemas")
    monkeypatch.setattr(generate, "SOURCES_DIR", tmp_path / "sources")
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    assert generate.main(["--check"]) == 1
    assert "stale: schemas/features.schema.json" in capsys.readouterr().out
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0
