"""`tierwise bundle build`: YAML source → verified bundle, the same document as the defaults."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.authoring.build import read_document
from app.authoring.generate import SOURCES_DIR, default_contract
from app.bundles.io import read_archive, read_dir
from app.cli import cli
from app.scoring.loader import load_family
from app.training.default_config import default_catalog, default_policy

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
DEFAULTS: dict[str, Callable[[], Any]] = {
    "features": default_contract, "catalog": default_catalog, "policy": default_policy}


def _build(kind: str, source: Path, out: Path, *extra: str) -> str:
    result = runner.invoke(cli, ["bundle", "build", kind, str(source), "--out", str(out),
                                 *extra])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("kind", ["features", "catalog", "policy"])
def test_default_sources_build_the_default_documents(kind: str, tmp_path: Path) -> None:
    out = tmp_path / kind
    printed = _build(kind, SOURCES_DIR / f"{kind}.yaml", out, "--archive")
    bundle = read_dir(out)
    assert f"{kind}: {out} sha256 {bundle.sha256}" in printed
    assert bundle.family == kind
    document = read_document(bundle, kind)
    assert document == DEFAULTS[kind]()
    shipped = ROOT / "models" / kind
    assert document == read_document(read_dir(shipped), kind)
    if kind == "features":  # features.json is canonical: the very bytes models/ ships
        assert bundle.files["features.json"] == read_dir(shipped).files["features.json"]
    assert load_family(bundle) == document  # the service's own loader accepts it
    archived = read_archive((tmp_path / f"{kind}.tar.gz").read_bytes(), max_bytes=1 << 24)
    assert archived.sha256 == bundle.sha256


def test_a_fixed_timestamp_rebuilds_the_same_sha256(tmp_path: Path) -> None:
    src = SOURCES_DIR / "policy.yaml"
    first = _build("policy", src, tmp_path / "a", "--created-at", "2026-12-01T00:00:00+00:00")
    second = _build("policy", src, tmp_path / "a", "--created-at", "2026-12-01T00:00:00+00:00")
    assert first.split("sha256 ")[1] == second.split("sha256 ")[1]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["label"] == "policy from policy.yaml"
    assert manifest["created_by"] == "tierwise bundle build"


def test_a_bad_source_lists_its_lines_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "policy.yaml"
    src.write_text("tiers:\n  - tier: Mass\n    min_aum: -1\nchurn_bands: []\nextra: 1\n")
    out = tmp_path / "out"
    result = runner.invoke(cli, ["bundle", "build", "policy", str(src), "--out", str(out)])
    assert result.exit_code == 2
    assert f"{src}:2: tiers[0].tier: String should match pattern" in result.output
    assert f"{src}:3: tiers[0].min_aum: Input should be greater than or equal to 0" \
        in result.output
    assert f"{src}:5: extra: unknown field; allowed here: tiers, churn_bands" in result.output
    assert "is not a valid policy source (3 problems)" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_a_source_of_another_kind_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["bundle", "build", "catalog", str(SOURCES_DIR / "policy.yaml"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "actions: Field required" in result.output


def test_out_must_be_a_bundle_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = runner.invoke(cli, ["bundle", "build", "policy", str(SOURCES_DIR / "policy.yaml"),
                                 "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "is not a bundle directory" in " ".join(result.output.replace("│", " ").split())
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["bundle", "build", "tier", str(SOURCES_DIR / "policy.yaml"),
                                 "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "features" in result.output and "catalog" in result.output


def test_a_catalog_is_checked_against_a_contract(tmp_path: Path) -> None:
    _build("catalog", SOURCES_DIR / "catalog.yaml", tmp_path / "ok", "--contract",
           str(SOURCES_DIR / "features.yaml"))
    src = tmp_path / "catalog.yaml"
    src.write_text("""\
actions:
  - id: card
    name: Card
    category: credit_card
    propensity_model: card
    value: 1
    eligibility:
      held_flag: age
      requires_flags: [payroll_customer, salaried]
      conditions:
        - {feature: loans_other_banks, op: ">", value: 0}
        - {feature: nps, op: ">=", value: 7}
""")
    result = runner.invoke(cli, ["bundle", "build", "catalog", str(src), "--out",
                                 str(tmp_path / "out"), "--contract",
                                 str(SOURCES_DIR / "features.yaml")])
    assert result.exit_code == 2
    assert f"{src}:8: actions[0].eligibility.held_flag: held_flag must be a boolean feature; " \
        "'age' is integer" in result.output
    assert f"{src}:9: actions[0].eligibility.requires_flags[1]: contract 'default' does not " \
        "declare feature 'salaried'" in result.output
    assert f"{src}:12: actions[0].eligibility.conditions[1].feature: contract 'default' does " \
        "not declare feature 'nps'" in result.output
    assert "(3 problems)" in result.output
    # without --contract the catalogue alone is valid (the service checks it at promotion)
    _build("catalog", src, tmp_path / "out")


def test_contract_option_is_for_catalogs_only(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["bundle", "build", "policy", str(SOURCES_DIR / "policy.yaml"),
                                 "--out", str(tmp_path / "o"), "--contract",
                                 str(SOURCES_DIR / "features.yaml")])
    assert result.exit_code == 2 and "only a catalog" in result.output
    bad = tmp_path / "c.yaml"
    bad.write_text("features: []\n")
    result = runner.invoke(cli, ["bundle", "build", "catalog", str(SOURCES_DIR / "catalog.yaml"),
                                 "--out", str(tmp_path / "o"), "--contract", str(bad)])
    assert result.exit_code == 2
    assert f"--contract {bad}: {bad}:1: features: Tuple should have at least 1 item" \
        in result.output


def test_built_bundles_serve_with_the_default_models(tmp_path: Path) -> None:
    """The three built bundles make a scoring context with the shipped model bundles, and a
    contract edited in YAML (a new optional feature) is the one the context validates with."""
    from app.bundles.manifest import FAMILIES
    from app.scoring.context import build_context

    text = (SOURCES_DIR / "features.yaml").read_text()
    edited = tmp_path / "features.yaml"
    edited.write_text(text.replace("features:\n", "features:\n  - name: nps_score\n"
                                   "    kind: integer\n    minimum: 0\n    maximum: 10\n", 1))
    bundles = {f: read_dir(ROOT / "models" / f) for f in FAMILIES}
    for kind, src in (("features", edited), ("catalog", SOURCES_DIR / "catalog.yaml"),
                      ("policy", SOURCES_DIR / "policy.yaml")):
        _build(kind, src, tmp_path / kind)
        bundles[kind] = read_dir(tmp_path / kind)
    ctx = build_context(bundles, {f: 1 for f in FAMILIES})
    assert ctx.contract.feature("nps_score") is not None
    assert ctx.schema.names[0] == "nps_score"
