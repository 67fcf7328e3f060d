"""Score a Spark DataFrame with tierwise: `score_dataframe` (optional extra `tierwise[spark]`).

    from app.book.spark import score_dataframe
    scored = score_dataframe(spark.read.parquet("s3://bank/book/"), "/opt/tierwise/models")
    scored.filter("errors IS NULL").drop("errors").write.parquet("s3://bank/scored/")

How it runs: the bundles of the chosen versions are read once, on the driver, which also
builds a context from them (so a set of versions that does not fit together fails there,
before any task). Their archives are broadcast; each executor's Python worker builds one
scoring context from them (the native tree walker where a C compiler is available and it
agrees with LightGBM, else plain LightGBM) and keeps it in a module-level cache keyed by the
bundles' sha256, so every partition that worker scores reuses it. Partitions travel as Arrow
record batches (`mapInArrow`) and are scored by the file command's code (app/book/chunks.py):
the same checks, the same answers as POST /v1/score/batch.

Output: the file command's columns (app/book/output.py, docs/book.md) plus `errors`, null for
a scored customer; a customer that failed keeps its row, with null scores and its problems
as a list of {field, problem}. Nothing is dropped. The executors need tierwise installed
(the wheel, with its extra: `pip install "tierwise[spark]"`), as for any Python UDF.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from app.book.chunks import BookScorer, ChunkResult, cyclic_gc_paused
from app.book.options import BookOptions
from app.book.sources import ModelSet, from_api, from_database, from_dirs

ERRORS = pa.list_(pa.struct([("field", pa.string()), ("problem", pa.string())]))
# Rows handed to the scorer at once inside a partition (Spark's Arrow batches are cut to
# spark.sql.execution.arrow.maxRecordsPerBatch, 10,000 by default).
_CACHE: dict[tuple[Any, ...], BookScorer] = {}
_CACHE_LOCK = threading.Lock()


def resolve_models(models: str | Path | ModelSet, *, key: str | None = None,
                   pins: Mapping[str, str] | None = None) -> ModelSet:
    """A bundles directory, a registry URL (http[s]://…, downloads through the API with an
    operator `key`), a registry database URL (postgresql+psycopg://…, sqlite:///…) or a
    ModelSet, as the bundles to score with (production unless `pins` name versions)."""
    if isinstance(models, ModelSet):
        return models
    text = str(models)
    if text.startswith(("http://", "https://")):
        return from_api(text, key, dict(pins or {}))
    if "://" in text:
        return from_database(text, dict(pins or {}))
    if pins:
        raise ValueError("pins need a registry (a URL), not a bundles directory")
    return from_dirs(Path(text))


def output_schema(scorer: BookScorer) -> pa.Schema:
    """The file command's schema, customer_id nullable (a failed row may have no id), with
    the `errors` column."""
    fields = [f.with_nullable(True) for f in scorer.layout.schema]
    return pa.schema([*fields, pa.field("errors", ERRORS)],
                     metadata=scorer.layout.schema.metadata)


def score_dataframe(df: Any, models: str | Path | ModelSet, *, parts: tuple[str, ...] | None
                    = None, top_n: int | None = None, explain: bool = False,
                    nested: bool = False, id_column: str = "customer_id",
                    native: bool = True, key: str | None = None,
                    pins: Mapping[str, str] | None = None) -> Any:
    """Score every row of the Spark DataFrame `df` (one customer per row, columns named as
    the contract's features, the id in `id_column`) with the bundles of `models`
    (see resolve_models); a DataFrame of the file command's columns plus `errors`.

    `parts`, `top_n`, `explain` and `nested` are the file command's options; `native=False`
    scores with plain LightGBM even where the tree walker builds. Columns that are not
    features are not read."""
    from pyspark.sql.pandas.types import from_arrow_schema

    model_set = resolve_models(models, key=key, pins=pins)
    options = BookOptions(parts=parts or BookOptions.parse_parts(None), top_n=top_n,
                          explain=explain, nested=nested)
    driver_scorer = BookScorer(model_set.context(fast=False), options, id_column)
    if id_column not in df.columns:
        raise ValueError(f"the DataFrame has no column {id_column!r}")
    payload = {
        "archives": _archives(model_set), "versions": dict(model_set.versions),
        "key": model_set.sha256s(), "options": options, "id_column": id_column,
        "native": native,
    }
    shipped = df.sparkSession.sparkContext.broadcast(payload)
    schema = output_schema(driver_scorer)
    used = driver_scorer.columns_used(df.columns)

    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return score_batches(shipped.value, batches)

    return df.select(*used).mapInArrow(score_partition, from_arrow_schema(schema))


def _archives(model_set: ModelSet) -> dict[str, bytes]:
    from app.bundles.io import to_archive

    return {family: to_archive(bundle) for family, bundle in model_set.bundles.items()}


def worker_scorer(payload: Mapping[str, Any]) -> BookScorer:
    """This process's scorer for the shipped bundles: built on first use, then reused by
    every partition (keyed by the bundles' sha256, the options and the id column)."""
    cache_key = (payload["key"], payload["options"], payload["id_column"], payload["native"])
    with _CACHE_LOCK:
        scorer = _CACHE.get(cache_key)
        if scorer is None:
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            from app.bundles.io import read_archive

            bundles = {f: read_archive(a, max_bytes=1 << 30)
                       for f, a in payload["archives"].items()}
            model_set = ModelSet(bundles, dict(payload["versions"]), "broadcast")
            cache = Path(tempfile.gettempdir()) / "tierwise-walker"
            ctx = model_set.context(fast=payload["native"], cache_dir=cache)
            scorer = BookScorer(ctx, payload["options"], payload["id_column"])
            _CACHE.clear()  # one set of versions at a time per worker
            _CACHE[cache_key] = scorer
    return scorer


def score_batches(payload: Mapping[str, Any],
                  batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """One partition's Arrow batches → scored batches of output_schema (failed rows kept)."""
    scorer = worker_scorer(payload)
    schema = output_schema(scorer)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        with cyclic_gc_paused():  # as the file command (app/book/chunks.py)
            result = scorer.score(batch, 1)
        yield _with_errors(result.scored, schema, None)
        if result.failed_rows:
            yield _failed(batch, result, scorer, schema)


def _with_errors(scored: pa.RecordBatch, schema: pa.Schema, errors: Any) -> pa.RecordBatch:
    columns = [*scored.columns, pa.nulls(scored.num_rows, ERRORS) if errors is None
               else errors]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _failed(batch: pa.RecordBatch, result: ChunkResult, scorer: BookScorer,
            schema: pa.Schema) -> pa.RecordBatch:
    """The rows that failed: their ids as given, null scores, and their problems."""
    by_row: dict[int, list[dict[str, str]]] = {}
    for e in result.errors:
        by_row.setdefault(e.row, []).append({"field": e.field, "problem": e.problem})
    ids = batch.column(scorer.id_column).take(pa.array(result.failed_rows))
    if not pa.types.is_string(ids.type):
        ids = ids.cast(pa.string(), safe=False)
    n = len(result.failed_rows)
    columns = [ids] + [pa.nulls(n, f.type) for f in list(schema)[1:-1]]
    columns.append(pa.array([by_row.get(i + 1, []) for i in result.failed_rows], type=ERRORS))
    return pa.RecordBatch.from_arrays(columns, schema=schema)
