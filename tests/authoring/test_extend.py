"""`tierwise contract extend BASE --with SOURCE --out NEW.yaml`: BASE's features kept as BASE
declares them, a source's other features appended as optional ones (an additive change), a
shared name that the source reads differently refused naming both declarations."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app.authoring.generate import SOURCES_DIR
from app.bundles.io import read_dir, to_archive
from app.cli import cli
from app.features.contract import DEFAULT_FEATURES
from app.features.family import contract_changes
from app.sources.sources import load_contract
from tests.authoring.test_contract_commands import _bank_table, _csv
from tests.conftest import MODELS_DIR

runner = CliRunner()
DEFAULT = SOURCES_DIR / "features.yaml"
SMALL_BANK = """\
name: small_bank
description: Features our CRM sends for each customer.
currency: EUR
roles:
  aum: assets_here
  age: age
  risk_profile: null
  risk_assessment_age_days: null
  days_to_next_maturity: null
features:
  # how old the customer is
  - name: age
    kind: integer
    unit: years
    minimum: 18
    maximum: 120
    nullable: false
    description: Age of the customer in whole years.
  - name: assets_here
    kind: number
    minimum: 0
    nullable: false
    description: Deposits and investments held with us today.
  - name: segment
    kind: category
    categories: [retail, private, sme]
    description: Segment in the CRM.
"""


def _extend(*args: str) -> str:
    result = runner.invoke(cli, ["contract", "extend", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _refused(*args: str) -> str:
    result = runner.invoke(cli, ["contract", "extend", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def _small_bank(tmp_path: Path) -> Path:
    path = tmp_path / "small_bank.yaml"
    path.write_text(SMALL_BANK)
    return path


def test_a_table_extends_the_default_contract_additively(tmp_path: Path) -> None:
    data = _csv(tmp_path / "bank_churn.csv", _bank_table())
    out = tmp_path / "extended.yaml"
    printed = _extend(str(DEFAULT), "--with", str(data), "--id-column", "CustomerId",
                      "--exclude", "Exited", "--out", str(out))
    base, new = load_contract(DEFAULT), load_contract(out)
    # BASE unchanged and first, in its order, declarations (reasons included) as they were
    assert new.features[:len(base.features)] == base.features
    assert new.roles == base.roles and new.name == base.name
    added = [f.name for f in new.features[len(base.features):]]
    assert added == ["creditscore", "geography", "balance", "hascrcard", "estimated_salary",
                     "tenure", "isvip"]  # Age is the default's age; no id, no label
    assert all(new.feature(n).nullable for n in added)  # type: ignore[union-attr]
    assert new.feature("geography").categories == ("France", "Germany", "Spain")  # type: ignore[union-attr]
    assert f"wrote {out}: the {len(base.features)} features of {DEFAULT}" in printed
    assert "age also in bank_churn.csv (column 'Age')" in printed
    assert "7 added as optional: creditscore, geography" in printed
    assert "0 breaking, 7 additive" in printed and "additive  isvip: new optional feature" \
        in printed
    changes = contract_changes(base, new)
    assert not changes.breaking and len(changes.additive) == 7
    text = out.read_text()
    assert "# added from bank_churn.csv (column 'CreditScore'): optional, so callers of " \
        "'default' today are unaffected" in text
    assert "# kept as 'default' declares it; also in bank_churn.csv (column 'Age')" in text
    diff = runner.invoke(cli, ["contract", "diff", str(DEFAULT), str(out)])
    assert diff.exit_code == 0 and "0 breaking, 7 additive" in diff.output
    built = runner.invoke(cli, ["bundle", "build", "features", str(out), "--out",
                                str(tmp_path / "features")])
    assert built.exit_code == 0, built.output


def test_a_model_bundle_brings_its_features_and_reason_texts(tmp_path: Path) -> None:
    base = _small_bank(tmp_path)
    out = tmp_path / "extended.yaml"
    printed = _extend(str(base), "--with", str(MODELS_DIR / "churn"), "--out", str(out))
    churn = read_dir(MODELS_DIR / "churn").manifest
    new = load_contract(out)
    assert [f.name for f in new.features[:3]] == ["age", "assets_here", "segment"]
    assert new.feature("age") == load_contract(base).feature("age")  # kept, integer fits
    read = [s.name for s in churn.features]
    assert [f.name for f in new.features[3:]] == [n for n in read if n != "age"]
    for spec in churn.features:
        if spec.name == "age":
            continue
        declared = new.feature(spec.name)
        assert declared is not None and declared.nullable
        assert declared.spec().model_dump(exclude={"nullable"}) == \
            spec.model_dump(exclude={"nullable"})
        if spec.name in churn.reason_codes:
            assert declared.reason is not None
            assert declared.reason.code == churn.reason_codes[spec.name].code
    assert "age also in churn bundle churn" in printed
    assert "breaking" in printed and "0 breaking" in printed


def test_an_archive_and_several_sources(tmp_path: Path) -> None:
    """A .tar.gz bundle and a table together: a new feature both have is added once."""
    base = _small_bank(tmp_path)
    (tmp_path / "churn.tar.gz").write_bytes(to_archive(read_dir(MODELS_DIR / "churn")))
    table = {"client": [f"c{i}" for i in range(300)],
             "age": [30 + i % 40 for i in range(300)],
             "complaints_12m": [i % 3 for i in range(300)],  # the churn model's, fits
             "new_score": [0.5 * i for i in range(300)]}
    data = _csv(tmp_path / "more.csv", table)  # type: ignore[arg-type]
    out = tmp_path / "x.yaml"
    printed = _extend(str(base), "--with", str(tmp_path / "churn.tar.gz"), "--with", str(data),
                      "--id-column", "client", "--out", str(out))
    names = [f.name for f in load_contract(out).features]
    assert names.count("complaints_12m") == 1 and names[-1] == "new_score"
    assert "age also in churn bundle churn.tar.gz, more.csv (column 'age')" in printed


def test_a_zero_one_column_fits_a_boolean_feature(tmp_path: Path) -> None:
    table = {"age": [30 + i % 40 for i in range(300)],
             "has_credit_card": [i % 2 for i in range(300)]}
    data = _csv(tmp_path / "flags.csv", table)  # type: ignore[arg-type]
    out = tmp_path / "x.yaml"
    printed = _extend(str(DEFAULT), "--with", str(data), "--out", str(out))
    assert "0 added as optional" in printed and "0 breaking, 0 additive" in printed
    assert load_contract(out).features == load_contract(DEFAULT).features


def test_to_stdout_keeps_the_summary_off_the_yaml(tmp_path: Path) -> None:
    data = _csv(tmp_path / "t.csv", _bank_table())
    result = runner.invoke(cli, ["contract", "extend", str(DEFAULT), "--with", str(data),
                                 "--id-column", "CustomerId", "--out", "-"])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    assert len(doc["features"]) == len(DEFAULT_FEATURES) + 8  # Exited not excluded here
    assert "additive" in result.stderr and "additive" not in result.stdout


@pytest.mark.parametrize(("column", "values", "message"), [
    ("Age", [15 + i % 70 for i in range(300)],
     "feature 'age': t.csv (column 'Age') declares it integer 0..120, required; contract "
     "'default' (DEFAULT) declares it integer 18..120, required: the table holds 15 to 84, "
     "outside the contract's range"),
    ("age", ["young" if i % 2 else "old" for i in range(300)],
     "the table holds category values, the contract declares integer"),
    ("risk_profile", ["low" if i % 2 else "C1" for i in range(300)],
     "the table holds 'low', not categories of the contract's"),
    ("tenure_months", [i + 0.5 for i in range(300)],
     "the table holds numbers that are not whole, the contract declares integer"),
    ("aum_total", [None if i % 2 else 1.5 for i in range(300)],
     "the table has missing values, the contract requires a value"),
    ("has_credit_card", [i % 3 for i in range(300)],
     "the table holds integer values, the contract declares boolean"),
])
def test_a_table_that_reads_a_base_feature_differently_is_refused(
        tmp_path: Path, column: str, values: list[object], message: str) -> None:
    data = _csv(tmp_path / "t.csv", {column: values, "other": list(range(300))})
    out = tmp_path / "x.yaml"
    result = runner.invoke(cli, ["contract", "extend", str(DEFAULT), "--with", str(data),
                                 "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message.replace("DEFAULT", str(DEFAULT)) in result.output
    assert "Give it another name in the source, or change the contract" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_a_bundle_whose_categories_do_not_fit_is_refused(tmp_path: Path) -> None:
    base = _small_bank(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(SMALL_BANK.replace("[retail, private, sme]", "[private, retail]"))
    assert runner.invoke(cli, ["bundle", "build", "features", str(other), "--out",
                               str(tmp_path / "other")]).exit_code == 0
    output = _refused(str(base), "--with", str(tmp_path / "other"), "--out",
                      str(tmp_path / "x.yaml"))
    assert "feature 'segment': features bundle other declares it category [private, retail], " \
        "optional;" in output
    assert "declares it category [retail, private, sme], optional" in output
    assert "are not the first categories of the contract's" in output


def test_two_sources_that_disagree_on_a_new_feature_are_refused(tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", {"Segment": ["x" if i % 2 else "y" for i in range(300)]})
    b = _csv(tmp_path / "b.csv", {"segment": [float(i) for i in range(300)]})
    output = _refused(str(DEFAULT), "--with", str(a), "--with", str(b), "--out",
                      str(tmp_path / "x.yaml"))
    assert "feature 'segment': b.csv (column 'segment') declares it" in output
    assert "a.csv (column 'Segment') declares it category [x, y], optional" in output


@pytest.mark.parametrize(("with_", "message"), [
    ("missing.csv", "--with missing.csv does not exist"),
    ("policy", "a policy bundle declares no features"),
    ("bad.csv", "column 'Name' has 1200 distinct values, too many for a category"),
])
def test_bad_sources(tmp_path: Path, with_: str, message: str) -> None:
    runner.invoke(cli, ["bundle", "build", "policy", str(SOURCES_DIR / "policy.yaml"),
                        "--out", str(tmp_path / "policy")])
    _csv(tmp_path / "bad.csv", {"Name": [f"n{i}" for i in range(1200)]})
    output = _refused(str(DEFAULT), "--with", str(tmp_path / with_), "--out",
                      str(tmp_path / "x.yaml"))
    assert message.replace("missing.csv", str(tmp_path / "missing.csv")) in output


def test_bad_base_and_existing_out(tmp_path: Path) -> None:
    data = _csv(tmp_path / "t.csv", _bank_table())
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfeatures: []\n")
    output = _refused(str(bad), "--with", str(data), "--out", str(tmp_path / "x.yaml"))
    assert f"{bad}:" in output and "features" in output
    (tmp_path / "x.yaml").write_text("keep me")
    output = _refused(str(DEFAULT), "--with", str(data), "--out", str(tmp_path / "x.yaml"))
    assert "exists; pass --force" in output
    assert (tmp_path / "x.yaml").read_text() == "keep me"
    output = _refused(str(DEFAULT), "--with", str(data), "--exclude", "Nope", "--out",
                      str(tmp_path / "y.yaml"))
    assert "excluded column 'Nope' is not a column of t.csv" in output
