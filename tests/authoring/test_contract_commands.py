"""`tierwise contract init` (a draft from a table) and `tierwise contract diff`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.authoring.generate import SOURCES_DIR
from app.cli import cli
from app.sources.sources import load_contract

runner = CliRunner()


def _bank_table(rows: int = 300, seed: int = 1) -> dict[str, list[object]]:
    rng = np.random.default_rng(seed)
    balance = np.round(rng.gamma(1.5, 50_000, rows), 2)
    return {
        "CustomerId": [15_600_000 + i for i in range(rows)],
        "CreditScore": rng.integers(350, 851, rows).tolist(),
        "Geography": rng.choice(["France", "Spain", "Germany"], rows).tolist(),
        "Age": rng.integers(18, 93, rows).tolist(),
        "Balance": [None if i % 10 == 0 else float(b) for i, b in enumerate(balance)],
        "HasCrCard": rng.integers(0, 2, rows).tolist(),
        "Estimated Salary": np.round(rng.uniform(10, 200_000, rows), 2).tolist(),
        "Tenure": rng.integers(0, 11, rows).tolist(),
        "IsVip": rng.choice([True, False], rows).tolist(),
        "Exited": rng.integers(0, 2, rows).tolist(),
    }


def _csv(path: Path, table: dict[str, list[object]], sep: str = ",") -> Path:
    names = list(table)
    lines = [sep.join(names)]
    for i in range(len(table[names[0]])):
        lines.append(sep.join("" if table[n][i] is None else
                              str(table[n][i]).lower() if isinstance(table[n][i], bool)
                              else str(table[n][i]) for n in names))
    path.write_text("\n".join(lines) + "\n")
    return path


def _init(*args: str) -> str:
    result = runner.invoke(cli, ["contract", "init", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_init_drafts_a_valid_contract_with_comments(tmp_path: Path) -> None:
    data = _csv(tmp_path / "bank_churn.csv", _bank_table())
    out = tmp_path / "contract.yaml"
    printed = _init("--data", str(data), "--id-column", "CustomerId", "--out", str(out))
    assert f"wrote {out}: 9 features" in printed
    assert "roles to decide: risk_profile, risk_assessment_age_days, days_to_next_maturity" \
        in printed
    contract = load_contract(out)
    assert contract.name == "bank_churn"
    by = {f.name: f for f in contract.features}
    assert "customerid" not in by
    assert by["creditscore"].kind == "integer" and by["creditscore"].minimum == 0
    assert (by["creditscore"].maximum or 0) >= 850 * 1.5
    assert by["geography"].kind == "category"
    assert by["geography"].categories == ("France", "Germany", "Spain")
    assert by["age"].maximum == 120 and not by["age"].nullable
    assert by["balance"].kind == "number" and by["balance"].nullable
    assert (by["hascrcard"].minimum, by["hascrcard"].maximum) == (0, 1)
    assert by["isvip"].kind == "boolean"
    assert "estimated_salary" in by
    assert by["age"].description.startswith("TODO")
    assert contract.roles.aum == "balance" and contract.roles.age == "age"
    assert contract.roles.risk_profile is None
    text = out.read_text()
    assert "; missing in 10.0% of 300 rows (column 'Balance')" in text  # every tenth row
    assert "# a 0/1 flag; missing in 0.0% of 300 rows" in text
    assert "aum: balance  # guessed from the name: check it" in text
    assert "risk_profile: null  # TODO: the feature that plays this role" in text
    assert "(column 'Estimated Salary')" in text


def test_init_sniffs_or_takes_the_delimiter_and_reads_parquet(tmp_path: Path) -> None:
    table = _bank_table()
    semi = _csv(tmp_path / "semi.csv", table, sep=";")
    _init("--data", str(semi), "--out", str(tmp_path / "a.yaml"), "--categorical", "Tenure")
    sniffed = load_contract(tmp_path / "a.yaml")
    assert sniffed.feature("geography") is not None
    tenure = sniffed.feature("tenure")
    assert tenure is not None and tenure.kind == "category"
    _init("--data", str(semi), "--delimiter", ";", "--out", str(tmp_path / "b.yaml"),
          "--categorical", "Tenure")
    assert load_contract(tmp_path / "b.yaml") == sniffed
    pq.write_table(pa.table(table), tmp_path / "bank.parquet")
    _init("--data", str(tmp_path / "bank.parquet"), "--out", str(tmp_path / "c.yaml"),
          "--name", "my-bank")
    parquet = load_contract(tmp_path / "c.yaml")
    assert parquet.name == "my-bank" and parquet.feature("customerid") is not None


def test_init_to_stdout(tmp_path: Path) -> None:
    data = _csv(tmp_path / "t.csv", _bank_table())
    printed = _init("--data", str(data), "--out", "-")
    assert printed.startswith("# Feature contract drafted by `tierwise contract init`")
    assert "features:\n" in printed


def test_init_leaves_out_columns_it_cannot_use(tmp_path: Path) -> None:
    table = {"opened": pa.array([dt.date(2020, 1, 1)] * 5, pa.date32()),
             "empty": pa.array([None] * 5, pa.float64()), "x": pa.array([1.5] * 5)}
    pq.write_table(pa.table(table), tmp_path / "t.parquet")
    out = tmp_path / "c.yaml"
    assert "2 columns left out" in _init("--data", str(tmp_path / "t.parquet"), "--out", str(out))
    text = out.read_text()
    assert "# left out: column 'opened': type date32[day] is not a number" in text
    assert "# left out: column 'empty': no values" in text
    assert [f.name for f in load_contract(out).features] == ["x"]


@pytest.mark.parametrize(("args", "message"), [
    (["--id-column", "Nope"], "id column 'Nope' is not a column of"),
    (["--categorical", "Nope"], "categorical column 'Nope' is not a column of"),
    (["--delimiter", ";;"], "the delimiter must be one character"),
])
def test_init_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    data = _csv(tmp_path / "t.csv", _bank_table())
    result = runner.invoke(cli, ["contract", "init", "--data", str(data), "--out",
                                 str(tmp_path / "c.yaml"), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_init_refuses_an_identifier_as_a_category(tmp_path: Path) -> None:
    table = _bank_table(rows=1200)
    table["CustomerId"] = [f"C{i:06d}" for i in range(1200)]
    data = _csv(tmp_path / "t.csv", table)
    result = runner.invoke(cli, ["contract", "init", "--data", str(data), "--out",
                                 str(tmp_path / "c.yaml")])
    assert result.exit_code == 2
    assert "column 'CustomerId' has 1200 distinct values" in result.output
    assert "--id-column" in result.output


def test_init_does_not_overwrite_without_force(tmp_path: Path) -> None:
    data = _csv(tmp_path / "t.csv", _bank_table())
    out = tmp_path / "c.yaml"
    out.write_text("mine")
    result = runner.invoke(cli, ["contract", "init", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 2 and "pass --force" in result.output
    assert out.read_text() == "mine"
    _init("--data", str(data), "--out", str(out), "--force")
    assert load_contract(out).features


def test_init_names_an_unreadable_file(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["contract", "init", "--data", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "is not a file" in result.output


# ------------------------------------------------------------------------------------- diff

DEFAULT = SOURCES_DIR / "features.yaml"


def _edited(tmp_path: Path, old: str, new: str, name: str = "new.yaml") -> Path:
    text = DEFAULT.read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def test_diff_of_identical_contracts_is_empty() -> None:
    result = runner.invoke(cli, ["contract", "diff", str(DEFAULT), str(DEFAULT)])
    assert result.exit_code == 0
    assert "0 breaking, 0 additive" in result.output


def test_diff_reports_breaking_changes_and_exits_1(tmp_path: Path) -> None:
    new = _edited(tmp_path, "    minimum: 18\n    maximum: 120\n",
                  "    minimum: 21\n    maximum: 120\n")
    result = runner.invoke(cli, ["contract", "diff", str(DEFAULT), str(new)])
    assert result.exit_code == 1, result.output
    assert "1 breaking, 0 additive" in result.output
    assert "BREAKING  age: range narrowed from [18.0, 120.0] to [21.0, 120.0]" in result.output
    assert "--allow-breaking" in result.output


def test_diff_additive_changes_exit_0(tmp_path: Path) -> None:
    new = _edited(tmp_path, "features:\n", "features:\n  - name: nps_score\n    kind: integer\n"
                  "    minimum: 0\n    maximum: 10\n")
    result = runner.invoke(cli, ["contract", "diff", str(DEFAULT), str(new)])
    assert result.exit_code == 0, result.output
    assert "additive  nps_score: new optional feature" in result.output


def test_diff_names_the_line_of_a_bad_source(tmp_path: Path) -> None:
    bad = _edited(tmp_path, "kind: integer", "kind: whole")
    result = runner.invoke(cli, ["contract", "diff", str(DEFAULT), str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:16: features[0].kind: Input should be" in result.output


def test_diff_reads_bundle_directories_and_archives(tmp_path: Path) -> None:
    new = _edited(tmp_path, "    nullable: false\n", "    nullable: true\n")
    out = tmp_path / "bundle"
    built = runner.invoke(cli, ["bundle", "build", "features", str(new), "--out", str(out),
                                "--archive"])
    assert built.exit_code == 0, built.output
    for form in (out, tmp_path / "bundle.tar.gz"):
        result = runner.invoke(cli, ["contract", "diff", str(DEFAULT), str(form)])
        assert result.exit_code == 0, result.output
        assert "additive  age: now optional (was required)" in result.output
    back = runner.invoke(cli, ["contract", "diff", str(out), str(DEFAULT)])
    assert back.exit_code == 1 and "age: now required (was optional)" in back.output


def test_diff_refuses_a_bundle_of_another_family(tmp_path: Path) -> None:
    out = tmp_path / "policy"
    runner.invoke(cli, ["bundle", "build", "policy", str(SOURCES_DIR / "policy.yaml"),
                        "--out", str(out)])
    result = runner.invoke(cli, ["contract", "diff", str(DEFAULT), str(out)])
    assert result.exit_code == 2
    assert "this is a policy bundle, not a features bundle" in result.output
