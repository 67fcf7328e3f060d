"""Data-science commands: `tierwise synth`, `tierwise train …`, `tierwise bundle verify`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import typer

from app.bundles.io import Bundle, read_dir, to_archive
from app.errors import BundleRejected, PayloadTooLarge
from app.training.cli_io import (
    ARCHIVE_HELP,
    SEED_HELP,
    _book,
    _guarded,
    check_out,
    write_bundle,
)


def synth(
    customers: int = typer.Option(100_000, "--customers", min=1, help="Rows to generate."),
    seed: int = typer.Option(0, help="Seed of the synthetic book."),
    out: Path = typer.Option(..., help="Output file, .parquet or .csv."),
    progress: bool = typer.Option(True, help="Show a progress bar on stderr."),
) -> None:
    """Generate a synthetic bank book (features, wallet tier, churn and purchases)."""
    from app.training.synth import generate_book, write_book

    started = time.perf_counter()
    book = generate_book(customers, seed, progress=progress)
    _guarded(lambda: write_book(book, out))
    typer.echo(f"wrote {customers} customers to {out} in {time.perf_counter() - started:.1f} s")


def _train_default(family: str, data: Path, out: Path, seed: int, archive: bool,
                   progress: bool) -> None:
    from app.training import train
    from app.training.tier_command import train_tier_from_book

    check_out(out)
    book = _book(data)
    trainers: dict[str, Callable[..., Bundle]] = {
        "tier": train_tier_from_book, "churn": train.train_churn,
        "products": train.train_products}
    trainer = trainers[family]
    started = time.perf_counter()
    bundle = _guarded(lambda: trainer(book, seed, progress=progress, source=data.name))
    typer.echo(f"trained {family} in {time.perf_counter() - started:.1f} s", err=True)
    write_bundle(bundle, out, archive=archive)


def train_all(
    data: Path = typer.Option(..., help="Book with features and outcomes (.parquet or .csv)."),
    out: Path = typer.Option(..., help="Directory; the bundles go to OUT/tier, OUT/churn, "
                             "OUT/products."),
    seed: int = typer.Option(0, help=SEED_HELP),
    archive: bool = typer.Option(False, "--archive", help=ARCHIVE_HELP),
    progress: bool = typer.Option(True, help="Show training progress on stderr."),
) -> None:
    """Train the tier, churn and products bundles from one book."""
    for family in ("tier", "churn", "products"):
        check_out(out / family)
    for family in ("tier", "churn", "products"):
        _train_default(family, data, out / family, seed, archive, progress)


def _single(family: str) -> Callable[..., None]:
    def command(
        data: Path = typer.Option(..., help="Book with features and outcomes."),
        out: Path = typer.Option(..., help="Bundle directory to write (holds manifest.json)."),
        seed: int = typer.Option(0, help=SEED_HELP),
        archive: bool = typer.Option(False, "--archive", help=ARCHIVE_HELP),
        progress: bool = typer.Option(True, help="Show training progress on stderr."),
    ) -> None:
        _train_default(family, data, out, seed, archive, progress)

    command.__doc__ = f"Train the {family} bundle from a book with the default features."
    return command


CONTRACT_HELP = ("Feature contract: a YAML source, a features bundle directory or its .tar.gz. "
                 "Columns are read as its features; the bundle records the contract.")
DELIMITER_HELP = "CSV delimiter (default: sniffed from the file: , ; tab or |)."
IGNORE_HELP = ("Comma-separated columns that are not features (other labels such as a "
               "wealth or product column, free text).")
TIME_HELP = ("Column ordering the rows in time (number or ISO date); with --test-from the "
             "test rows are those at or after that value (out-of-time test).")


def train_churn_command(
    data: Path = typer.Option(..., help="Training file, .csv or .parquet."),
    out: Path = typer.Option(..., help="Bundle directory to write (holds manifest.json)."),
    target: str | None = typer.Option(
        None, help="0/1 column to predict. When given, every other column (but --id-column "
        "and --time-column) becomes a feature of a custom churn model."),
    contract: Path | None = typer.Option(None, help=CONTRACT_HELP),
    id_column: str | None = typer.Option(None, help="Customer id column, never a feature."),
    categorical: str = typer.Option("", help="Comma-separated columns to treat as categories "
                                    "(text columns always are)."),
    ignore_columns: str = typer.Option("", help=IGNORE_HELP),
    delimiter: str | None = typer.Option(None, help=DELIMITER_HELP),
    time_column: str | None = typer.Option(None, help=TIME_HELP),
    test_from: str | None = typer.Option(None, help="First time value of the test rows."),
    folds: int = typer.Option(5, min=2, max=20, help="Cross-validation folds on the "
                              "training rows (number of trees, settings, calibration)."),
    seed: int = typer.Option(0, help=SEED_HELP),
    archive: bool = typer.Option(False, "--archive", help=ARCHIVE_HELP),
    progress: bool = typer.Option(True, help="Show training progress on stderr."),
) -> None:
    """Train a churn bundle: on the default features, or on your own file with --target."""
    if target is None:
        if (id_column or categorical or contract or delimiter or time_column or test_from
                or ignore_columns):
            raise typer.BadParameter("--contract, --id-column, --categorical, "
                                     "--ignore-columns, --delimiter, --time-column and "
                                     "--test-from need --target")
        _train_default("churn", data, out, seed, archive, progress)
        return
    from app.training.custom import train_churn_from_file

    if not data.is_file():
        raise typer.BadParameter(f"{data} is not a file", param_hint="--data")
    check_out(out)
    cats = tuple(c.strip() for c in categorical.split(",") if c.strip())
    started = time.perf_counter()
    bundle = _guarded(lambda: train_churn_from_file(
        data, target=target, id_column=id_column, categorical=cats, contract=contract,
        ignore=_names(ignore_columns),
        delimiter=delimiter, time_column=time_column, test_from=test_from, folds=folds,
        seed=seed, progress=progress, warn=_warn))
    typer.echo(f"trained custom churn in {time.perf_counter() - started:.1f} s", err=True)
    write_bundle(bundle, out, archive=archive)


def train_products_command(
    data: Path = typer.Option(..., help="Training file, .csv or .parquet (or a synthetic book)."),
    out: Path = typer.Option(..., help="Bundle directory to write (holds manifest.json)."),
    products: str | None = typer.Option(
        None, help="Comma-separated 0/1 product columns (names = the catalogue's product "
        "models), or NAME=COLUMN items. Without it: the synthetic book's products on the "
        "default features."),
    contract: Path | None = typer.Option(None, help=CONTRACT_HELP),
    offered_column: str | None = typer.Option(
        None, help="Column with the product offered to the customer (empty when none): each "
        "product's model then learns the response to an offer, from the rows where it was "
        "offered."),
    id_column: str | None = typer.Option(None, help="Customer id column, never a feature."),
    categorical: str = typer.Option("", help="Comma-separated columns to treat as categories."),
    ignore_columns: str = typer.Option("", help=IGNORE_HELP),
    delimiter: str | None = typer.Option(None, help=DELIMITER_HELP),
    time_column: str | None = typer.Option(None, help=TIME_HELP),
    test_from: str | None = typer.Option(None, help="First time value of the test rows."),
    folds: int = typer.Option(5, min=2, max=20, help="Cross-validation folds."),
    seed: int = typer.Option(0, help=SEED_HELP),
    archive: bool = typer.Option(False, "--archive", help=ARCHIVE_HELP),
    progress: bool = typer.Option(True, help="Show training progress on stderr."),
) -> None:
    """Train the products bundle: from a synthetic book, or from your file with --products."""
    if products is None:
        if (contract or offered_column or id_column or categorical or time_column or test_from
                or ignore_columns or delimiter):
            raise typer.BadParameter("--contract, --offered-column, --id-column, "
                                     "--categorical, --ignore-columns, --delimiter, "
                                     "--time-column and --test-from need --products")
        _train_default("products", data, out, seed, archive, progress)
        return
    from app.training.products_file import train_products_from_file

    if not data.is_file():
        raise typer.BadParameter(f"{data} is not a file", param_hint="--data")
    check_out(out)
    names = tuple(p.strip() for p in products.split(",") if p.strip())
    cats = tuple(c.strip() for c in categorical.split(",") if c.strip())
    started = time.perf_counter()
    bundle = _guarded(lambda: train_products_from_file(
        data, products=names, contract=contract, offered_column=offered_column,
        id_column=id_column, categorical=cats, ignore=_names(ignore_columns),
        delimiter=delimiter, time_column=time_column,
        test_from=test_from, folds=folds, seed=seed, progress=progress, warn=_warn))
    typer.echo(f"trained products in {time.perf_counter() - started:.1f} s", err=True)
    write_bundle(bundle, out, archive=archive)


def _names(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def verify(path: Path = typer.Argument(..., help="Bundle directory or .tar.gz archive.")) -> None:
    """Check a bundle's hashes and replay its reference rows in a child process under the
    TIERWISE_VERIFY_* limits; exit 1 when it is refused."""
    from app.config import get_settings
    from app.scoring.verification import VerifyLimits, verify_archive

    s = get_settings()
    limits = VerifyLimits(memory_mb=s.verify_memory_mb, cpu_seconds=s.verify_cpu_seconds,
                          wall_seconds=s.verify_wall_seconds, open_files=s.verify_open_files,
                          file_size_mb=s.verify_file_size_mb, max_bytes=s.max_bundle_bytes)
    try:
        if path.is_dir():
            archive = to_archive(read_dir(path))
            limits = replace(limits, max_bytes=max(limits.max_bytes, len(archive)))
        elif path.is_file():
            archive = path.read_bytes()
        else:
            raise typer.BadParameter(f"{path} does not exist", param_hint="PATH")
        verdict = verify_archive(archive, limits)
    except (BundleRejected, PayloadTooLarge) as exc:
        typer.echo(f"REJECTED {path}: {exc.message}", err=True)
        for d in exc.details:
            typer.echo(f"  {d.field}: {d.problem}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"OK {verdict.family} {verdict.sha256}  {path}")


def register(cli: typer.Typer) -> None:
    """Add `synth`, `train …` and `bundle verify` to the root command."""
    cli.command("synth")(synth)
    train_app = typer.Typer(help="Train model bundles.", no_args_is_help=True)
    train_app.command("all")(train_all)
    from app.training.tier_command import train_tier_command

    train_app.command("tier")(train_tier_command)
    train_app.command("churn")(train_churn_command)
    train_app.command("products")(train_products_command)
    cli.add_typer(train_app, name="train")
    bundle_app = typer.Typer(help="Inspect model bundles.", no_args_is_help=True)
    bundle_app.command("verify")(verify)
    cli.add_typer(bundle_app, name="bundle")
