"""`score_file`: a CSV or Parquet book → the scored book and its errors file, chunk by chunk."""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.book.chunks import BookScorer, cyclic_gc_paused
from app.book.files import BookError, BookReader, BookWriter, ErrorsFile, errors_path
from app.book.options import BookOptions
from app.scoring.context import ScoringContext

CHUNK_ROWS = 10_000


@dataclass
class BookSummary:
    """What a run did: rows read, scored and failed (rows, not problems), where it wrote."""

    rows: int = 0
    scored: int = 0
    failed: int = 0
    problems: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    out: Path | None = None
    errors: Path | None = None
    ignored_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "scored": self.scored, "failed": self.failed,
                "problems": self.problems, "seconds": round(self.seconds, 3),
                "cpu_seconds": round(self.cpu_seconds, 3),
                "ignored_columns": self.ignored_columns}


def score_file(ctx: ScoringContext, data: Path, out: Path, options: BookOptions, *,
               id_column: str = "customer_id", chunk_rows: int = CHUNK_ROWS,
               delimiter: str | None = None, errors: Path | None = None,
               strict_columns: bool = False, progress: bool = False) -> BookSummary:
    """Score every row of `data` into `out`; rows that fail go to `errors` (default beside
    `out`). Raises BookError for a file that cannot be scored at all (nothing is written)."""
    started, cpu = time.perf_counter(), time.process_time()
    reader = BookReader(data, delimiter=delimiter)
    scorer = BookScorer(ctx, options, id_column)
    if id_column not in reader.names:
        shown = ", ".join(reader.names[:12]) + (" …" if len(reader.names) > 12 else "")
        raise BookError(f"{data.name} has no column {id_column!r} (its columns: {shown}); "
                        "name the id column with --id-column")
    unknown = scorer.unknown_columns(reader.names)
    if unknown and strict_columns:
        raise BookError(f"{data.name} has columns that are not features of the live "
                        f"contract: {', '.join(unknown)}")
    summary = BookSummary(out=out, errors=errors or errors_path(out), ignored_columns=unknown)
    if out.resolve() == data.resolve():
        raise BookError("--out must not be the input file")
    if not out.parent.is_dir():
        raise BookError(f"{out.parent} is not a directory (for --out)")
    writer = BookWriter(out, scorer.layout.schema)
    failures = ErrorsFile(summary.errors)  # type: ignore[arg-type]
    bar = _progress(reader.total_rows) if progress else None
    gc.collect()
    try:
        for batch, numbers in reader.chunks(scorer.columns_used(reader.names), chunk_rows):
            with cyclic_gc_paused():
                result = scorer.score(batch, numbers)
            writer.write(result.scored)
            failures.add(reader.skipped)
            summary.rows += batch.num_rows + len(reader.skipped)
            summary.failed += len(reader.skipped)
            reader.skipped.clear()
            failures.add(result.errors)
            summary.scored += result.scored.num_rows
            summary.failed += len(result.failed_rows)
            if bar is not None:
                bar.update(batch.num_rows)
        failures.add(reader.skipped)  # wrong-width rows after the last chunk
        summary.rows += len(reader.skipped)
        summary.failed += len(reader.skipped)
        summary.problems = failures.count
        summary.seconds = time.perf_counter() - started
        summary.cpu_seconds = time.process_time() - cpu
        writer.close({"rows": summary.rows, "scored": summary.scored, "failed": summary.failed,
                      "source": data.name})
    except BaseException:
        writer.abort()
        raise
    finally:
        gc.unfreeze()
        failures.close()
        if bar is not None:
            bar.close()
    if not failures.count:
        summary.errors = None
    return summary


def _progress(total: int | None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=" customers", unit_scale=True, file=sys.stderr,
                smoothing=0.1, mininterval=0.5, desc="scoring")
