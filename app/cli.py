"""The `tierwise` command: serve, and the operator and data-science subcommands."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

cli = typer.Typer(
    name="tierwise",
    help="Scoring service for retail banks: tier, churn and next-best-product.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from app import __version__

        typer.echo(f"tierwise {__version__}")
        raise typer.Exit()


@cli.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the installed version and exit."),
) -> None:
    """Scoring service for retail banks: tier, churn and next-best-product."""


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    workers: int = typer.Option(1, min=1, help="Worker processes (one per core is typical)."),
) -> None:
    """Start the HTTP service."""
    from app.serve.server import run_server

    run_server(host=host, port=port, workers=workers)


@cli.command("config")
def config_command(
    markdown: bool = typer.Option(False, "--markdown",
                                  help="Print the reference of every setting in Markdown."),
    write: Path | None = typer.Option(None, "--write", help="With --markdown: replace the "
                                      "generated table in this file (docs/configuration.md)."),
) -> None:
    """Show the settings in force (password masked), or the reference of every setting."""
    from app import config_reference
    from app.config import get_settings

    if not markdown:
        for line in config_reference.effective_settings(get_settings()):
            typer.echo(line)
    elif write is not None:
        config_reference.write_reference(write)
        typer.echo(f"wrote the settings reference into {write}")
    else:
        typer.echo(config_reference.settings_markdown(), nl=False)


@cli.command()
def openapi(
    out: str = typer.Option("-", help="File to write, or - for standard output."),
) -> None:
    """Print the OpenAPI document the service serves (openapi.yaml is this output)."""
    from app.api.openapi import openapi_yaml
    from app.main import create_app

    text = openapi_yaml(create_app().api)
    if out == "-":
        typer.echo(text, nl=False)
    else:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)


walker_cli = typer.Typer(help="The native tree walker: build it ahead of time, check it.",
                         no_args_is_help=True)
cli.add_typer(walker_cli, name="walker")


@walker_cli.command("build")
def walker_build(
    out: Path | None = typer.Option(None, "--out", help="Directory to build into (default: "
                                    "$TIERWISE_WALKER_DIR, else lib/tierwise/walker inside "
                                    "this installation, where the service looks first)."),
    cc: str | None = typer.Option(None, "--cc", help="C compiler (default: $TIERWISE_CC, "
                                  "$CC or cc)."),
) -> None:
    """Compile the tree walker ahead of time (install or image build), with its sha256 record."""
    from app.engine import native

    target = (out or native.walker_dir()) / native.PREBUILT_NAME
    try:
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        record = native.build(target, cc_path=native.find_compiler(cc))
        native.verify(target)  # what the service will check before loading it
    except (native.BuildError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"built {target} ({record['size']} bytes, sha256 {record['sha256']}, "
               f"{record['compiler']} {' '.join(record['flags'])})")


@walker_cli.command("check")
def walker_check() -> None:
    """Say which evaluator serves the default bundles here, with which kernels; exit 1 unless
    it is the tree walker."""
    from app.bundles import read_dir
    from app.bundles.manifest import FAMILIES
    from app.config import get_settings
    from app.engine import native
    from app.engine.compiled import evaluator_info, fastest_evaluator
    from app.scoring.context import build_context

    settings = get_settings()
    prebuilt = native.walker_dir() / native.PREBUILT_NAME
    try:
        state = f"verified, sha256 {native.verify(prebuilt)['sha256']}"
    except native.BuildError as exc:
        state = "absent" if not prebuilt.exists() else f"refused: {exc}"
    try:
        compiler = native.find_compiler(None)
    except native.BuildError:
        compiler = "none"
    typer.echo(f"walker: {prebuilt} ({state})")
    typer.echo(f"compiler: {compiler}")
    ctx = build_context({f: read_dir(settings.models_dir / f) for f in FAMILIES},
                        {f: 1 for f in FAMILIES})
    name, isa = evaluator_info(fastest_evaluator(ctx.layout,
                                                 cache_dir=settings.compile_cache_dir))
    typer.echo(f"evaluator: {name} isa: {isa}")
    if name != "treewalk":
        raise typer.Exit(1)


def _register_subcommands() -> None:
    # Each area owns its commands; the import keeps start-up of `serve` light.
    from app.training.commands import register as register_training

    register_training(cli)
    from app.authoring.commands import register as register_authoring

    register_authoring(cli)  # contract init|diff, bundle build (after training's bundle group)
    from app.book.command import register as register_book

    register_book(cli)  # score
    try:
        from app.registry.commands import register as register_registry
    except ImportError:  # pragma: no cover - registry commands not built yet
        return
    register_registry(cli)


_register_subcommands()


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:2] == ["score"]:
        from app.book.command import skip_unneeded_imports

        skip_unneeded_imports()  # a second of start-up less (a whole-book run only)
    cli()


if __name__ == "__main__":
    main()
