"""`tierwise bundle build`, `tierwise contract init|diff|extend`.

Exit codes: 0 done; 1 `contract diff` found breaking changes; 2 bad input (a source with
problems, each printed as FILE:LINE: field: problem; an unreadable table or bundle; a
feature `contract extend` cannot add).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from app.features.family import ContractChanges

ARCHIVE_HELP = "Also write DIR.tar.gz, the form `POST /v1/models/{family}/versions` takes."


class SourceKindOption(StrEnum):
    features = "features"
    catalog = "catalog"
    policy = "policy"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def bundle_build(
    kind: SourceKindOption = typer.Argument(
        ..., metavar="KIND", help="Which source: features (the contract), catalog or policy."),
    source: Path = typer.Argument(..., metavar="SOURCE.yaml",
                                  help="The YAML source (see docs/authoring.md)."),
    out: Path = typer.Option(..., "--out", help="Bundle directory to write (holds "
                             "manifest.json; an older bundle there is replaced)."),
    archive: bool = typer.Option(False, "--archive", help=ARCHIVE_HELP),
    label: str = typer.Option("", help="Free text kept in the manifest (default: the source "
                              "file's name)."),
    contract: Path | None = typer.Option(
        None, "--contract", help="catalog only: check that every feature its rules name "
        "(conditions, held and required flags) is in this contract (YAML source, features "
        "bundle directory or .tar.gz)."),
    created_at: str | None = typer.Option(None, "--created-at", help="Timestamp written in the "
                                          "manifest (default: now); fix it to rebuild the "
                                          "same bytes and sha256."),
) -> None:
    """Build a features, catalog or policy bundle from its YAML source, verify that it reads
    back, and print its sha256."""
    from app.authoring.build import (
        build_from_source,
        contract_error,
        read_contract,
        verify_written,
    )
    from app.errors import BundleRejected, PayloadTooLarge
    from app.sources.yaml_source import SourceError
    from app.training.cli_io import check_out, write_bundle

    check_out(out)
    if contract is not None and kind is not SourceKindOption.catalog:
        raise typer.BadParameter("only a catalog is checked against a contract",
                                 param_hint="--contract")
    against = None
    if contract is not None:
        try:
            against = read_contract(contract)
        except (BundleRejected, PayloadTooLarge, ValueError, OSError) as exc:
            raise _fail(f"--contract {contract}: {contract_error(exc)}") from None
    try:
        bundle = build_from_source(kind.value, source, label=label, created_at=created_at,
                                   contract=against)
    except SourceError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise _fail(f"{source} is not a valid {kind.value} source "
                    f"({len(exc.problems)} problem{'s' if len(exc.problems) > 1 else ''})"
                    ) from None
    except (BundleRejected, PayloadTooLarge, ValueError, OSError) as exc:
        raise _fail(contract_error(exc)) from None
    write_bundle(bundle, out, archive=archive)
    verify_written(out, kind.value, bundle)


def contract_init(
    data: Path = typer.Option(..., "--data", help="Table with one column per feature, .csv "
                              "or .parquet."),
    id_column: str | None = typer.Option(None, "--id-column", help="Customer id column, "
                                         "never a feature."),
    categorical: str = typer.Option("", "--categorical", help="Comma-separated columns to "
                                    "treat as categories (text columns always are)."),
    delimiter: str | None = typer.Option(None, "--delimiter", help="CSV delimiter (default: "
                                         "sniffed among , ; tab |)."),
    name: str | None = typer.Option(None, "--name", help="Contract name (default: from the "
                                    "file name)."),
    out: Path = typer.Option(Path("contract.yaml"), "--out", help="YAML file to write, or - "
                             "for standard output."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT when it exists."),
) -> None:
    """Draft a contract YAML from a table: kinds, ranges with a margin, categories,
    nullability, missing shares as comments, roles guessed from the names (or TODO)."""
    from app.authoring.draft import draft_contract
    from app.sources.sources import load_source
    from app.sources.yaml_source import SourceError

    if str(out) != "-" and out.exists() and not force:
        raise _fail(f"{out} exists; pass --force to overwrite it")
    cats = tuple(c.strip() for c in categorical.split(",") if c.strip())
    try:
        draft = draft_contract(data, id_column=id_column, categorical=cats,
                               delimiter=delimiter, name=name)
    except (ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    text = draft.yaml()
    if str(out) == "-":
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    try:
        load_source(out, "features")  # what we draft must be a valid source as it stands
    except SourceError as exc:  # pragma: no cover - a drafting bug
        raise _fail(f"the draft does not validate:\n{exc}") from None
    todo = [role for role, note in draft.role_notes.items() if note.startswith("TODO")]
    typer.echo(f"wrote {out}: {len(draft.contract.features)} features"
               + (f", {len(draft.skipped)} columns left out" if draft.skipped else "")
               + (f"; roles to decide: {', '.join(todo)}" if todo else ""))


def contract_diff(
    old: Path = typer.Argument(..., help="The contract today: YAML source, features bundle "
                               "directory or .tar.gz."),
    new: Path = typer.Argument(..., help="The proposed contract, in any of those forms."),
) -> None:
    """Print what NEW changes for callers against OLD: breaking changes (a request valid
    today may be refused) and additive ones. Exit 1 when any change is breaking."""
    from app.authoring.build import contract_error, read_contract
    from app.errors import BundleRejected, PayloadTooLarge
    from app.features.family import contract_changes

    contracts = []
    for path in (old, new):
        try:
            contracts.append(read_contract(path))
        except (ValueError, OSError, BundleRejected, PayloadTooLarge) as exc:
            raise _fail(f"{path}: {contract_error(exc)}") from None
    changes = contract_changes(*contracts)
    _echo_changes(f"{old} → {new}", changes)
    if changes.is_breaking:
        typer.echo("promoting NEW needs --allow-breaking (callers must change first)")
        raise typer.Exit(1)


def _echo_changes(title: str, changes: ContractChanges, *, err: bool = False) -> None:
    typer.echo(f"{title}: {len(changes.breaking)} breaking, {len(changes.additive)} additive",
               err=err)
    for line in changes.breaking:
        typer.echo(f"  BREAKING  {line}", err=err)
    for line in changes.additive:
        typer.echo(f"  additive  {line}", err=err)


def contract_extend(
    base: Path = typer.Argument(..., metavar="BASE", help="The contract to extend (usually "
                                "the live one): YAML source, features bundle directory or "
                                ".tar.gz."),
    with_: list[Path] = typer.Option(
        ..., "--with", help="A model bundle (directory or .tar.gz: the features it reads), a "
        "features bundle, or a data table (.csv/.parquet, drafted as `contract init` does). "
        "Repeatable."),
    out: Path = typer.Option(..., "--out", help="YAML file to write, or - for standard "
                             "output."),
    id_column: str | None = typer.Option(None, "--id-column", help="Tables: the customer id "
                                         "column, never a feature."),
    exclude: str = typer.Option("", "--exclude", help="Tables: comma-separated columns that "
                                "are not features (labels, the time column)."),
    categorical: str = typer.Option("", "--categorical", help="Tables: comma-separated "
                                    "columns to treat as categories."),
    delimiter: str | None = typer.Option(None, "--delimiter", help="Tables: CSV delimiter "
                                         "(default: sniffed)."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT when it exists."),
) -> None:
    """Write BASE plus the features of the --with sources it does not declare, as optional
    features (an additive change: callers of BASE are unaffected). A feature BASE declares
    stays as BASE declares it when the source reads it the same way; otherwise an error."""
    from app.authoring.build import contract_error, read_contract
    from app.authoring.extend import ExtendError, Found, extend, source_features
    from app.errors import BundleRejected, PayloadTooLarge
    from app.sources.sources import load_source
    from app.sources.yaml_source import SourceError

    if str(out) != "-" and out.exists() and not force:
        raise _fail(f"{out} exists; pass --force to overwrite it")
    try:
        contract = read_contract(base)
    except (ValueError, OSError, BundleRejected, PayloadTooLarge) as exc:
        raise _fail(f"{base}: {contract_error(exc)}") from None
    options = {"id_column": id_column, "delimiter": delimiter,
               "exclude": tuple(c.strip() for c in exclude.split(",") if c.strip()),
               "categorical": tuple(c.strip() for c in categorical.split(",") if c.strip())}
    found: list[Found] = []
    for source in with_:
        try:
            found += source_features(source, **options)
        except ExtendError as exc:
            raise _fail(str(exc)) from None
        except (ValueError, OSError, BundleRejected, PayloadTooLarge) as exc:
            raise _fail(f"--with {source}: {contract_error(exc)}") from None
    try:
        ext = extend(contract, found, base_source=str(base), sources=[str(p) for p in with_])
    except ExtendError as exc:
        raise _fail(str(exc)) from None
    text = ext.yaml()
    if str(out) == "-":
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        try:
            load_source(out, "features")
        except SourceError as exc:  # pragma: no cover - an emitting bug
            raise _fail(f"the extended contract does not validate:\n{exc}") from None
        kept = "; ".join(f"{n} also in {', '.join(s)}" for n, s in ext.kept.items())
        typer.echo(f"wrote {out}: the {len(contract.features)} features of {base} as it "
                   "declares them" + (f" ({kept})" if kept else "")
                   + f"; {len(ext.added)} added as optional"
                   + (": " + ", ".join(ext.added) if ext.added else ""))
    _echo_changes(f"{base} → {out}", ext.changes, err=str(out) == "-")


def register(cli: typer.Typer) -> None:
    """Add `contract init|diff|extend`, and `build` to the `bundle` group (made if absent)."""
    contract_app = typer.Typer(help="Author the feature contract: draft it from a table, "
                               "compare versions, extend it with a model's or table's "
                               "features.", no_args_is_help=True)
    contract_app.command("init")(contract_init)
    contract_app.command("diff")(contract_diff)
    contract_app.command("extend")(contract_extend)
    cli.add_typer(contract_app, name="contract")
    bundle_app = next((g.typer_instance for g in cli.registered_groups
                       if g.name == "bundle" and g.typer_instance is not None), None)
    if bundle_app is None:
        bundle_app = typer.Typer(help="Build and inspect bundles.", no_args_is_help=True)
        cli.add_typer(bundle_app, name="bundle")
    bundle_app.command("build")(bundle_build)
