"""Bad rows in a book: each reported with its row, field and problem, the other rows scored
with the answers they get in a clean file, nothing lost. Hostile files too."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.book.files import BookError
from app.book.options import BookOptions
from app.book.run import score_file
from app.cli import cli
from app.scoring.context import ScoringContext
from tests.conftest import MODELS_DIR

OPTIONS = BookOptions(nested=True)


def _errors(path: Path | None) -> list[dict[str, str]]:
    assert path is not None and path.is_file()
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _scored(path: Path) -> dict[str, dict[str, Any]]:
    return {r["customer_id"]: r for r in pq.read_table(path).to_pylist()}


@pytest.fixture(scope="module")
def clean(book_parquet: Path, default_context: ScoringContext,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], dict]:
    """The book's rows and their answers when nothing is wrong."""
    out = tmp_path_factory.mktemp("clean") / "scored.parquet"
    summary = score_file(default_context, book_parquet, out, OPTIONS)
    assert summary.failed == 0 and summary.errors is None
    return pq.read_table(book_parquet).to_pylist(), _scored(out)


def _write_csv(path: Path, rows: list[dict[str, Any]], names: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for r in rows:
            w.writerow(["" if r.get(n) is None else r[n] for n in names])


def test_bad_csv_rows_are_reported_and_the_rest_scored(
        clean: tuple[list[dict[str, Any]], dict], default_context: ScoringContext,
        tmp_path: Path) -> None:
    rows, answers = clean
    rows = [dict(r) for r in rows[:60]]
    names = ["customer_id", *default_context.schema.names]
    rows[3]["age"] = "abc"                    # not a number
    rows[7]["tenure_months"] = "12.5"         # not an integer
    rows[11]["vip_card"] = "maybe"            # not a boolean
    rows[15]["risk_profile"] = "C9"           # not a category
    rows[19]["aum_total"] = "-5"              # out of range
    rows[23]["age"] = None                    # required, empty cell
    rows[27]["customer_id"] = "has space"     # not an id
    rows[31]["customer_id"] = None            # no id
    rows[35]["payroll_customer"] = "yes" if rows[35]["payroll_customer"] else "no"  # fine
    rows[36]["age"] = f"{rows[36]['age']:.0f}"  # fine: 47 as well as 47.0 (the others)
    data = tmp_path / "book.csv"
    _write_csv(data, rows, names)
    with open(data, "a", encoding="utf-8") as fh:
        fh.write("C_SHORT,1,2\n")             # row 61: too few cells
    out = tmp_path / "scored.parquet"
    summary = score_file(default_context, data, out, OPTIONS)
    got = {(int(e["row"]), e["field"]) for e in _errors(summary.errors)}
    assert got == {(4, "age"), (8, "tenure_months"), (12, "vip_card"), (16, "risk_profile"),
                   (20, "aum_total"), (24, "age"), (28, "customer_id"), (32, "customer_id"),
                   (61, "(row)")}
    problems = {e["field"]: e["problem"] for e in _errors(summary.errors)}
    assert "integer" in problems["tenure_months"] and "C9" in problems["risk_profile"]
    assert "at least 0" in problems["aum_total"]
    assert summary.rows == 61 and summary.failed == 9 and summary.scored == 52
    scored = _scored(out)
    assert len(scored) == 52  # nothing lost: scored + failed = every row
    for cid, row in scored.items():
        assert row == answers[cid], cid  # as from the clean Parquet file


def test_wrong_types_in_parquet(clean: tuple[list[dict[str, Any]], dict],
                                default_context: ScoringContext, tmp_path: Path) -> None:
    rows, answers = clean
    table = pa.Table.from_pylist(rows[:40])
    # a text column for a number feature, one cell not a number; integer ids; NaN = missing
    aum = [str(v) for v in table.column("aum_total").to_pylist()]
    aum[5] = "lots"
    salary = table.column("monthly_salary").to_pylist()
    salary = [float("nan") if v is None else v for v in salary]
    ids = list(range(1000, 1040))
    table = (table.set_column(table.schema.get_field_index("aum_total"), "aum_total",
                              pa.array(aum))
             .set_column(table.schema.get_field_index("monthly_salary"), "monthly_salary",
                         pa.array(salary, type=pa.float64()))
             .set_column(0, "customer_id", pa.array(ids, type=pa.int64())))
    data = tmp_path / "book.parquet"
    pq.write_table(table, data)
    out = tmp_path / "scored.parquet"
    summary = score_file(default_context, data, out, OPTIONS)
    assert [(e["row"], e["customer_id"], e["field"]) for e in _errors(summary.errors)] == [
        ("6", "1005", "aum_total")]
    assert "number" in _errors(summary.errors)[0]["problem"]
    scored = _scored(out)
    assert len(scored) == 39
    for i, r in enumerate(rows[:40]):
        if i != 5:
            mine = dict(scored[str(1000 + i)])
            mine["customer_id"] = r["customer_id"]
            assert mine == answers[r["customer_id"]]


def test_unknown_columns_are_ignored_with_a_warning_or_refused(
        book_parquet: Path, default_context: ScoringContext, tmp_path: Path) -> None:
    summary = score_file(default_context, book_parquet, tmp_path / "a.parquet", OPTIONS)
    assert "wallet_tier" in summary.ignored_columns and summary.failed == 0
    with pytest.raises(BookError, match=r"not features.*wallet_tier"):
        score_file(default_context, book_parquet, tmp_path / "b.parquet", OPTIONS,
                   strict_columns=True)
    assert not (tmp_path / "b.parquet").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"age,aum_total\n30,100\n", "no column 'customer_id'"),
    (b"PAR1 not really parquet", None),
])
def test_hostile_files(content: bytes, message: str | None, default_context: ScoringContext,
                       tmp_path: Path) -> None:
    data = tmp_path / ("book.parquet" if content.startswith(b"PAR1") else "book.csv")
    data.write_bytes(content)
    with pytest.raises(BookError, match=message or "not a readable Parquet file"):
        score_file(default_context, data, tmp_path / "out.parquet", OPTIONS)
    assert not (tmp_path / "out.parquet").exists()


def test_a_header_alone_gives_an_empty_scored_book(default_context: ScoringContext,
                                                   tmp_path: Path) -> None:
    data = tmp_path / "book.csv"
    data.write_text("customer_id,age\n", encoding="utf-8")
    out = tmp_path / "out.parquet"
    summary = score_file(default_context, data, out, OPTIONS)
    assert summary.rows == 0 and pq.read_table(out).num_rows == 0
    assert "tier_predicted" in pq.read_schema(out).names


def test_csv_out_writes_nested_values_as_json(book_parquet: Path,
                                              default_context: ScoringContext,
                                              tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    score_file(default_context, book_parquet, out, BookOptions(top_n=2))
    with open(out, encoding="utf-8", newline="") as fh:
        first = next(csv.DictReader(fh))
    assert first["rec1_reasons"].startswith("[") and "rec3_action_id" not in first


def test_exit_codes(clean: tuple[list[dict[str, Any]], dict], tmp_path: Path,
                    book_parquet: Path) -> None:
    runner = CliRunner()
    base = ["score", "--bundles", str(MODELS_DIR), "--no-progress", "--no-native"]
    ok = runner.invoke(cli, [*base, "--data", str(book_parquet), "--out",
                             str(tmp_path / "ok.parquet")])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,age\nC1,abc\n", encoding="utf-8")
    some = runner.invoke(cli, [*base, "--data", str(bad), "--out", str(tmp_path / "s.parquet")])
    assert some.exit_code == 3, some.output
    assert (tmp_path / "s.errors.csv").is_file()
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    none = runner.invoke(cli, [*base, "--data", str(empty), "--out", str(tmp_path / "e.parquet")])
    assert none.exit_code == 2 and "empty" in none.output
    opts = runner.invoke(cli, [*base, "--data", str(book_parquet), "--out",
                               str(tmp_path / "o.parquet"), "--parts", "tier,wealth"])
    assert opts.exit_code == 2 and "wealth" in opts.output


def test_row_numbers_count_the_rows_a_csv_parser_skipped(default_context: ScoringContext,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "book.csv"
    data.write_text("customer_id,age\nC1,30\nC2\nC3,abc\nC4,40,1\nC5,41\nC6,x\n",
                    encoding="utf-8")
    summary = score_file(default_context, data, tmp_path / "out.parquet", OPTIONS)
    got = [(int(e["row"]), e["field"]) for e in _errors(summary.errors)]
    # (every parsed row also lacks the required features: only age is in this file)
    assert sorted(r for r, f in got if f == "(row)") == [2, 4]
    assert sorted(r for r, f in got if f == "age") == [3, 6]
    assert {r for r, f in got if f != "(row)"} == {1, 3, 5, 6}
    assert summary.rows == 6 and summary.failed == 6 and summary.scored == 0


def test_a_csv_with_a_byte_order_mark_and_semicolons(clean: tuple[list[dict[str, Any]], dict],
                                                    default_context: ScoringContext,
                                                    tmp_path: Path) -> None:
    rows, answers = clean
    names = ["customer_id", *default_context.schema.names]
    data = tmp_path / "book.csv"
    with open(data, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(names)
        for r in rows[:20]:
            w.writerow(["" if r.get(n) is None else r[n] for n in names])
    out = tmp_path / "out.parquet"
    summary = score_file(default_context, data, out, OPTIONS)
    assert summary.failed == 0 and summary.scored == 20
    for cid, row in _scored(out).items():
        assert row == answers[cid]
