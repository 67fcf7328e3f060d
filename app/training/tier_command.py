"""`tierwise train tier`: the wallet-wealth tier model from a book or a bank's own table.

    tierwise train tier --data FILE --wealth-column W [--contract C] [--id-column I]
                        [--folds K] [--seed S] --out DIR [--archive]

Without --contract the features are the default contract's columns present in the file (the
synthetic book: its `wallet_wealth` column is the wealth column unless another is named; an
older book with only `wallet_tier` trains the legacy multiclass model). With --contract the
columns are read as that contract's features and the bundle records the contract.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer

from app.training.dataset import TrainingDataError

if TYPE_CHECKING:  # LightGBM and the trainers load only when a command runs
    from app.bundles.io import Bundle

DEFAULT_WEALTH_COLUMN = "wallet_wealth"
DEFAULT_AUM = "aum_total"
FOLDS = 5


def _floats(values: Any, column: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object:
        try:
            return np.array([np.nan if v is None else float(v) for v in arr], dtype=np.float64)
        except (TypeError, ValueError):
            raise TrainingDataError(f"wealth column {column!r} holds text; it must hold "
                                    "amounts (empty where unknown)") from None
    return arr.astype(np.float64)


def train_tier_from_book(book: Mapping[str, np.ndarray], seed: int, *,
                         wealth_column: str | None = None, folds: int = FOLDS,
                         num_threads: int = 1, progress: bool = False,
                         source: str = "", created_at: str | None = None) -> Bundle:
    """The tier bundle from a book with the default features: wallet wealth (`wealth_column`,
    by default `wallet_wealth`), or the legacy multiclass model for a book that only has the
    `wallet_tier` label."""
    from app.features.contract import DEFAULT_FEATURES
    from app.training.dataset import encode_book
    from app.training.tier_wealth import train_wealth_tier

    column = wealth_column or (DEFAULT_WEALTH_COLUMN if DEFAULT_WEALTH_COLUMN in book else None)
    if column is None:
        if "wallet_tier" in book:
            from app.training.train import train_tier

            return train_tier(book, seed, num_threads=num_threads, progress=progress,
                              source=source, created_at=created_at)
        raise TrainingDataError(f"the data has no {DEFAULT_WEALTH_COLUMN} column: name the "
                                "column of known wealth with --wealth-column")
    if column not in book:
        raise TrainingDataError(f"--wealth-column {column!r} is not a column of the data")
    specs = [f for f in DEFAULT_FEATURES if f.name in book and f.name != column]
    if not specs:
        raise TrainingDataError("no column of the data is a feature of the default contract "
                                "(pass --contract to read the bank's own features)")
    x = encode_book(book, specs)
    return train_wealth_tier(
        x, specs, _floats(book[column], column), wealth_column=column,
        aum_feature=DEFAULT_AUM if any(f.name == DEFAULT_AUM for f in specs) else None,
        seed=seed, folds=folds, num_threads=num_threads, progress=progress, source=source,
        created_at=created_at)


def train_tier_with_contract(data: Path, contract_path: Path, *, wealth_column: str,
                             id_column: str | None, seed: int, folds: int, progress: bool,
                             delimiter: str | None = None, time_column: str | None = None,
                             test_from: str | None = None) -> Bundle:
    """The tier bundle from a bank's table read as the contract's features (with
    `time_column`/`test_from`: tested on the rows from that time on)."""
    from app.training import contract_input as contract_mod
    from app.training import table as table_mod
    from app.training.tier_wealth import train_wealth_tier

    contract, ref = contract_mod.load_contract(contract_path)
    text = [id_column] if id_column else []
    table = table_mod.read_table(data, delimiter=delimiter, text_columns=text)
    table_mod.require_columns(table, [(wealth_column, "--wealth-column"),
                                      (id_column, "--id-column"),
                                      (time_column, "--time-column")], data.name)
    test_mask = (table_mod.time_split(table, time_column, test_from)
                 if time_column is not None and test_from is not None else None)
    exclude: Sequence[str] = [c for c in (wealth_column, id_column, time_column) if c]
    specs, x, _ = contract_mod.contract_features(table, contract, exclude=exclude,
                                                 source=data.name, warn=table_mod.warn_stderr)
    wealth = table_mod.number_values(table.column(wealth_column), wealth_column)
    aum = contract.roles.aum
    bundle = train_wealth_tier(
        x, specs, wealth, wealth_column=wealth_column,
        aum_feature=aum if aum in {s.name for s in specs} else None, seed=seed, folds=folds,
        progress=progress, source=data.name, test_mask=test_mask)
    return contract_mod.attach_contract(bundle, ref)


def train_tier_command(
    data: Path = typer.Option(..., help="Training file, .csv or .parquet (the synthetic book "
                              "or the bank's own table)."),
    out: Path = typer.Option(..., help="Bundle directory to write (holds manifest.json)."),
    wealth_column: str | None = typer.Option(
        None, help="Column of known total wallet wealth (empty where unknown: those rows are "
        f"not labels). Default: {DEFAULT_WEALTH_COLUMN} when the file has it."),
    contract: Path | None = typer.Option(
        None, help="Feature contract (YAML source, features bundle directory or .tar.gz): "
        "columns are read as its features and the bundle records it."),
    id_column: str | None = typer.Option(None, help="Customer id column, never a feature."),
    delimiter: str | None = typer.Option(None, help="CSV delimiter (with --contract; "
                                         "default: sniffed)."),
    time_column: str | None = typer.Option(
        None, help="With --contract: column ordering the rows in time (number or ISO date); "
        "with --test-from the rows from that value on are the test rows (out of time)."),
    test_from: str | None = typer.Option(None, help="First value of --time-column in the "
                                         "test rows."),
    folds: int = typer.Option(FOLDS, min=2, max=20, help="Cross-validation folds."),
    seed: int = typer.Option(0, help="Seed of the splits and of LightGBM (same seed, same "
                             "bundle bytes)."),
    archive: bool = typer.Option(False, "--archive", help="Also write DIR.tar.gz, the form "
                                 "`POST /v1/models/{family}/versions` takes."),
    progress: bool = typer.Option(True, help="Show training progress on stderr."),
) -> None:
    """Train the tier bundle: wallet wealth learned where it is known; tiers come from the
    live policy's thresholds at scoring time."""
    from app.training.cli_io import _book, _guarded, check_out, write_bundle

    check_out(out)
    started = time.perf_counter()
    if contract is not None:
        if wealth_column is None:
            raise typer.BadParameter("name the wealth column of the table",
                                     param_hint="--wealth-column")
        column = wealth_column
        if (time_column is None) != (test_from is None):
            raise typer.BadParameter("give --time-column and --test-from together",
                                     param_hint="--test-from")
        bundle = _guarded(lambda: train_tier_with_contract(
            data, contract, wealth_column=column, id_column=id_column, seed=seed, folds=folds,
            progress=progress, delimiter=delimiter, time_column=time_column,
            test_from=test_from))
    else:
        if time_column is not None or test_from is not None:
            raise typer.BadParameter("--time-column and --test-from need --contract",
                                     param_hint="--time-column")
        book = _book(data)
        bundle = _guarded(lambda: train_tier_from_book(
            book, seed, wealth_column=wealth_column, folds=folds, progress=progress,
            source=data.name))
    typer.echo(f"trained tier in {time.perf_counter() - started:.1f} s", err=True)
    write_bundle(bundle, out, archive=archive)
