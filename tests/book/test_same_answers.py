"""The same customers through HTTP (POST /v1/score/batch on a real server), `tierwise score`
(models from the registry API and from the registry database) and Spark on local[2]: the
same answers, to the last bit, and the same versions recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.book.output import read_metadata
from app.cli import cli
from app.config import get_settings
from tests.api.live_service import running_service
from tests.book.helpers import api_results, as_api, features_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def answers(book_parquet: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Any]]:
    """HTTP answers and file-command answers for the same book, on one served registry."""
    tmp = tmp_path_factory.mktemp("served")
    records = pq.read_table(book_parquet).to_pylist()
    with running_service(tmp) as (url, key):
        integers, names = _feature_names()
        items = [{"customer_id": r["customer_id"], "features": features_of(r, integers, names)}
                 for r in records]
        resp = httpx.post(f"{url}/v1/score/batch", headers={"X-API-Key": key}, timeout=120,
                          json={"items": items, "options": {"explain": True}})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["failed"] == 0
        out_api = tmp / "via_api.parquet"
        done = CliRunner().invoke(cli, ["score", "--data", str(book_parquet), "--out",
                                        str(out_api), "--url", url, "--key", key, "--nested",
                                        "--explain", "--no-progress", "--chunk-rows", "128"])
        assert done.exit_code == 0, done.output
    database = f"sqlite:///{tmp / 'registry.sqlite3'}"
    out_db = tmp / "via_db.parquet"
    get_settings.cache_clear()
    try:
        done = CliRunner(env={"TIERWISE_DATABASE_URL": database}).invoke(
            cli, ["score", "--data", str(book_parquet), "--out", str(out_db), "--nested",
                  "--explain", "--no-progress"])
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    yield {"http": api_results(body), "models": body["models"], "database": database,
           "files": {"api": out_api, "database": out_db}}


def _feature_names() -> tuple[set[str], list[str]]:
    from app.bundles import read_dir
    from app.bundles.manifest import FAMILIES
    from app.scoring.context import build_context
    from tests.conftest import MODELS_DIR

    ctx = build_context({f: read_dir(MODELS_DIR / f) for f in FAMILIES},
                        dict.fromkeys(FAMILIES, 1))
    return ({s.name for s in ctx.schema.specs if s.kind == "integer"},
            list(ctx.schema.names))


def _classes(http: dict[str, dict[str, Any]]) -> list[str]:
    return list(next(iter(http.values()))["tier"]["probabilities"])


@pytest.mark.parametrize("source", ["api", "database"])
def test_the_file_command_answers_as_http(answers: dict[str, Any], source: str) -> None:
    path = answers["files"][source]
    http = answers["http"]
    rows = pq.read_table(path).to_pylist()
    assert len(rows) == len(http)
    classes = _classes(http)
    for row in rows:
        assert as_api(row, classes) == http[row["customer_id"]]
    meta = read_metadata(path)
    assert meta["models"] == answers["models"]  # versions and sha256 of every family
    assert meta["rows"] == meta["scored"] == len(http) and meta["failed"] == 0


def test_spark_answers_as_http(answers: dict[str, Any], spark: Any, book_parquet: Path) -> None:
    from app.book.spark import score_dataframe

    df = spark.read.parquet(str(book_parquet)).repartition(3)
    scored = score_dataframe(df, answers["database"], nested=True, explain=True)
    rows = [r.asDict(recursive=True) for r in scored.collect()]
    http = answers["http"]
    assert len(rows) == len(http)
    classes = _classes(http)
    for row in rows:
        assert row.pop("errors") is None
        assert as_api(row, classes) == http[row["customer_id"]]
    flat = score_dataframe(df, answers["database"]).toArrow().to_pylist()
    for row in flat:  # the flat columns hold the first recommendations' fields
        recs = http[row["customer_id"]]["recommendations"]
        assert row["rec1_action_id"] == (recs[0]["action_id"] if recs else None)
        assert row["rec1_priority"] == (recs[0]["priority"] if recs else None)


def test_pins_name_registry_versions(answers: dict[str, Any], book_parquet: Path,
                                     tmp_path: Path) -> None:
    from app.book.sources import from_database, parse_pins
    from app.errors import NotFound

    database = answers["database"]
    assert from_database(database, {"tier": "production", "churn": "1"}).versions["churn"] == 1
    with pytest.raises(NotFound, match="no version 99"):
        from_database(database, {"tier": "99"})
    with pytest.raises(NotFound):
        parse_pins(["nope=1"])
    get_settings.cache_clear()
    try:
        done = CliRunner(env={"TIERWISE_DATABASE_URL": database}).invoke(
            cli, ["score", "--data", str(book_parquet), "--out", str(tmp_path / "o.parquet"),
                  "--pin", "churn=7", "--no-progress"])
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 1 and "pin.churn" in done.output
