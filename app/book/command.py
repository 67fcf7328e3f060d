"""`tierwise score --data BOOK --out SCORED`: the whole book scored on one context.

Exit codes: 0 every row scored; 3 some rows failed (listed in the errors file, the others
scored); 2 the file or the options cannot be used (nothing written); 1 the models cannot be
loaded (registry unreachable, a bundle refused).
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from app.scoring.context import ScoringContext

EXIT_ROWS_FAILED = 3
EXIT_UNUSABLE = 2
EXIT_MODELS = 1


def score(
    data: Path = typer.Option(..., "--data", help="The book: .csv or .parquet, one row per "
                              "customer, columns named as the contract's features."),
    out: Path = typer.Option(..., "--out", help="Scored book: .parquet (default) or .csv."),
    bundles: Path | None = typer.Option(None, "--bundles", help="Score with the bundle "
                                        "directories DIR/<family>/ (as models/) instead of a "
                                        "registry."),
    url: str | None = typer.Option(None, "--url", help="Registry server URL: download the "
                                   "bundles through its API (needs an operator key)."),
    key: str | None = typer.Option(None, "--key", envvar="TIERWISE_API_KEY",
                                   help="API key for --url (env TIERWISE_API_KEY)."),
    pin: list[str] = typer.Option([], "--pin", help="family=version or family=alias instead "
                                  "of production (repeatable; approved versions only)."),
    parts: str | None = typer.Option(None, "--parts", help="Comma list of tier, churn, "
                                     "recommendations (default: all)."),
    top_n: int | None = typer.Option(None, "--top-n", help="Recommendations per customer "
                                     "(default: the policy's)."),
    explain: bool = typer.Option(False, "--explain", help="Add the reasons: churn, and the "
                                 "features that raised each recommended product (slower; "
                                 "the API gives them by default)."),
    nested: bool = typer.Option(False, "--nested", help="Recommendations as one nested list "
                                "column instead of rec<k>_* columns."),
    id_column: str = typer.Option("customer_id", "--id-column", help="The customer id column."),
    delimiter: str | None = typer.Option(None, "--delimiter", help="CSV delimiter (default: "
                                         "sniffed)."),
    errors: Path | None = typer.Option(None, "--errors", help="Errors file (default: "
                                       "<out stem>.errors.csv beside --out)."),
    strict_columns: bool = typer.Option(False, "--strict-columns", help="Refuse a file with "
                                        "columns that are not features (default: warn, "
                                        "ignore them)."),
    chunk_rows: int = typer.Option(10_000, "--chunk-rows", min=1, max=1_000_000,
                                   help="Customers scored together (memory grows with it)."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Progress bar with customers/s on stderr."),
    native: bool = typer.Option(True, "--native/--no-native", help="The compiled tree walker "
                                "where it builds (else plain LightGBM)."),
    report: Path | None = typer.Option(None, "--report", help="Also write the run's summary "
                                       "as JSON (counts, seconds, CPU seconds, versions)."),
) -> None:
    """Score a whole book (every customer of a CSV or Parquet file) into a Parquet or CSV
    file: tier, churn and top recommendations, with the answers of POST /v1/score/batch."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from app.book.files import BookError
    from app.book.options import BookOptions
    from app.book.run import score_file
    from app.errors import TierwiseError

    try:
        options = BookOptions(parts=BookOptions.parse_parts(parts), top_n=top_n,
                              explain=explain, nested=nested)
    except TierwiseError as exc:
        _fail(exc, EXIT_UNUSABLE)
    ctx = _context(bundles, url, key, pin, native)
    try:
        summary = score_file(ctx, data, out, options, id_column=id_column,
                             chunk_rows=chunk_rows, delimiter=delimiter, errors=errors,
                             strict_columns=strict_columns, progress=progress)
    except BookError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from None
    if report is not None:
        import json

        report.write_text(json.dumps({**summary.as_dict(), "models": ctx.models_served,
                                      "evaluator": ctx.evaluator.name,
                                      "peak_rss_mb": _peak_rss_mb()}, indent=2) + "\n",
                          encoding="utf-8")
    if summary.ignored_columns:
        typer.echo(f"warning: ignored {len(summary.ignored_columns)} columns that are not "
                   f"features: {', '.join(summary.ignored_columns)}", err=True)
    rate = summary.rows / summary.seconds if summary.seconds else 0.0
    typer.echo(f"scored {summary.scored:,} of {summary.rows:,} customers in "
               f"{summary.seconds:.1f} s ({rate:,.0f}/s) → {out}", err=True)
    if summary.failed:
        typer.echo(f"{summary.failed:,} rows failed ({summary.problems:,} problems): see "
                   f"{summary.errors}", err=True)
        raise typer.Exit(EXIT_ROWS_FAILED)


def _context(bundles: Path | None, url: str | None, key: str | None, pins: list[str],
             native: bool) -> ScoringContext:
    """The context of the chosen models; exits 1 (2 for bad options) when it cannot be had."""
    import httpx

    from app.book import sources
    from app.errors import TierwiseError
    from app.registry.client import RegistryClientError

    try:
        pinned = sources.parse_pins(pins)
        if bundles is not None:
            if pinned:
                raise typer.BadParameter("--pin needs a registry (--url or the database), "
                                         "not --bundles", param_hint="--pin")
            models = sources.from_dirs(bundles)
        elif url is not None:
            models = sources.from_api(url, key, pinned)
        else:
            models = sources.from_database(_database_url(), pinned)
        from app.config import get_settings

        return models.context(fast=native, cache_dir=get_settings().compile_cache_dir)
    except RegistryClientError as exc:
        typer.echo(exc.describe(), err=True)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
    except TierwiseError as exc:
        _fail(exc, EXIT_MODELS)
    except Exception as exc:
        from app.registry.database import is_unavailable

        if not is_unavailable(exc):
            raise
        typer.echo(f"error: the registry database cannot be reached: {exc}", err=True)
    raise typer.Exit(EXIT_MODELS)


def _database_url() -> str:
    from app.config import get_settings

    url = get_settings().database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        typer.echo(f"error: no registry database at {url}: score with --bundles DIR, a "
                   "server with --url, or set TIERWISE_DATABASE_URL", err=True)
        raise typer.Exit(EXIT_MODELS)
    return url


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM: since exec, unlike ru_maxrss, which on
    Linux also counts the parent's memory at the fork); None where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _fail(exc: object, code: int) -> NoReturn:
    from app.errors import TierwiseError

    assert isinstance(exc, TierwiseError)
    typer.echo(f"error: {exc.message}", err=True)
    for d in exc.details:
        typer.echo(f"  {d.field}: {d.problem}", err=True)
    raise typer.Exit(code)


# Packages LightGBM imports at its own import when they are installed, for its scikit-learn and
# pandas interfaces, and pyarrow when it first converts Python values: scikit-learn (with
# SciPy's statistics) and pandas take ~1 s of CPU, most of a run's start-up, and a run needs
# neither (it predicts on numpy arrays, converts plain Python values).
NOT_NEEDED = ("sklearn", "pandas")


def skip_unneeded_imports() -> None:
    """Make scikit-learn and pandas look not installed to this process; for the `score`
    process only (app.cli.main), before anything imports them. LightGBM then comes without
    its scikit-learn and DataFrame interfaces, pyarrow without its pandas conversions; the
    command uses neither (tests/book/test_startup.py checks the answers are the same)."""
    if not any(isinstance(f, _NotInstalled) for f in sys.meta_path):
        sys.meta_path.insert(0, _NotInstalled())


class _NotInstalled(importlib.abc.MetaPathFinder):
    """Refuses to find NOT_NEEDED (and their submodules) as an absent package is refused.
    (Not sys.modules[name] = None: Cython's import in pyarrow takes that None for pandas.)"""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> None:
        if fullname.partition(".")[0] in NOT_NEEDED:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not used by tierwise "
                                      "score)", name=fullname)
        return None


def register(cli: typer.Typer) -> None:
    """Add `score` to the root command."""
    cli.command("score")(score)
