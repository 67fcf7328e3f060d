"""`tierwise db|keys|push|versions|approve|promote|rollback|history|ledger`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import typer

from app.registry.client import RegistryClient, RegistryClientError

URL = typer.Option("http://127.0.0.1:8000", "--url", envvar="TIERWISE_URL",
                   help="Server URL (env TIERWISE_URL).")
KEY = typer.Option(None, "--key", envvar="TIERWISE_API_KEY",
                   help="API key (env TIERWISE_API_KEY).")

db_app = typer.Typer(help="The registry database schema (Alembic migrations).",
                     no_args_is_help=True)
keys_app = typer.Typer(help="API keys (directly in the database).", no_args_is_help=True)


def _engine() -> Any:
    from app.config import get_settings
    from app.registry.database import make_engine

    return make_engine(get_settings().database_url)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations (up to REVISION, default head)."""
    from app.registry import database

    engine = _engine()
    database.upgrade(engine, revision)
    typer.echo(f"database at {database.current_revision(engine)}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help='Target, e.g. "-1" or "base".')) -> None:
    """Revert migrations down to REVISION ("base" drops every registry table)."""
    from app.registry import database

    engine = _engine()
    database.downgrade(engine, revision)
    typer.echo(f"database at {database.current_revision(engine) or 'base'}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one available."""
    from app.registry import database

    typer.echo(f"current: {database.current_revision(_engine()) or 'base (empty)'}")
    typer.echo(f"head:    {database.head_revision()}")


AS = typer.Option(None, "--as", metavar="PRINCIPAL",
                  help="Who runs this command: a principal holding an active admin key "
                       "(recorded in the ledger and on the key).")


def _acting(session: Any, acting: str | None) -> Any:
    """The actor recorded for a keys command: --as, or the OS login when it is missing."""
    import getpass

    from app.registry.auth_keys import Principal, acting_principal

    if acting is not None:
        return acting_principal(session, acting)
    login = getpass.getuser()
    typer.echo("warning: no --as PRINCIPAL: recorded as created by an unnamed CLI user "
               f"(cli:{login}); pass --as (it will be required)", err=True)
    return Principal(key_id="cli", name=f"cli:{login}", role="admin",
                     principal_id=f"cli:{login}", kind="service")


@keys_app.command("create")
def keys_create(role: str = typer.Option(..., help="scorer, publisher, approver or admin"),
                principal: str | None = typer.Option(
                    None, help="The person or service account that owns the key (created "
                               "when new)."),
                kind: str | None = typer.Option(
                    None, help="person or service, for a new principal (default person)."),
                name: str | None = typer.Option(
                    None, help="Deprecated: the former name of --principal."),
                acting: str | None = AS) -> None:
    """Create a key for a principal and print it once (only its hash is stored)."""
    from app.errors import TierwiseError
    from app.registry.auth_keys import create_key
    from app.registry.database import make_sessionmaker

    if name is not None:
        typer.echo("warning: --name is deprecated; use --principal", err=True)
    if principal is None and name is None:
        raise typer.BadParameter("give --principal NAME", param_hint="--principal")
    with make_sessionmaker(_engine()).begin() as session:
        try:
            row, plain = create_key(session=session, role=role, principal=principal, kind=kind,
                                    name=name, actor=_acting(session, acting))
        except TierwiseError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"created {row.role} key {row.id} for {row.name!r}; it is shown only once:",
               err=True)
    typer.echo(plain)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (ids, roles, principals; never the keys themselves)."""
    from app.registry import repository
    from app.registry.database import make_sessionmaker

    with make_sessionmaker(_engine())() as session:
        owners = {p.id: p for p in repository.list_principals(session)}
        for row in repository.list_api_keys(session):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            owner = owners[row.principal_id]
            typer.echo(f"{row.id}  {row.role:<9}  {state:<18}  {owner.name} ({owner.kind}, "
                       f"principal {owner.id}; created by {row.created_by})")


@keys_app.command("revoke")
def keys_revoke(key_id: str, acting: str | None = AS) -> None:
    """Revoke a key by id (replicas stop accepting it within seconds)."""
    from app.errors import TierwiseError
    from app.registry.auth_keys import revoke_key
    from app.registry.database import make_sessionmaker

    with make_sessionmaker(_engine()).begin() as session:
        try:
            revoke_key(session=session, key_id=key_id, actor=_acting(session, acting))
        except TierwiseError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"revoked {key_id}")


@contextmanager
def _client(url: str, key: str | None) -> Iterator[RegistryClient]:
    try:
        with RegistryClient(url, key) as client:
            yield client
    except RegistryClientError as exc:
        typer.echo(exc.describe(), err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from None


def _pairs(values: list[str], what: str) -> dict[str, int]:
    out = {}
    for item in values:
        family, sep, version = item.partition("=")
        if not sep or not version.isdigit():
            raise typer.BadParameter(f"{item!r}: use family=version", param_hint=what)
        out[family] = int(version)
    return out


def push(bundle: Path = typer.Argument(..., exists=True, help="Bundle directory or .tar.gz"),
         check_with: list[str] = typer.Option([], "--check-with",
                                              help="Verify against family=version instead of "
                                                   "production (repeatable)."),
         url: str = URL, key: str | None = KEY) -> None:
    """Publish a bundle (the server verifies it before storing it)."""
    from app.bundles.io import read_archive, read_dir, to_archive
    from app.errors import TierwiseError

    try:
        if bundle.is_dir():
            parsed = read_dir(bundle)
            archive = to_archive(parsed)
        else:
            archive = bundle.read_bytes()
            parsed = read_archive(archive, max_bytes=max(len(archive) * 1000, 1 << 30))
    except TierwiseError as exc:  # refused locally: the server would refuse it too
        typer.echo(f"error: {bundle}: {exc.message}", err=True)
        for d in exc.details:
            typer.echo(f"  {d.field}: {d.problem}", err=True)
        raise typer.Exit(1) from None
    with _client(url, key) as client:
        result = client.push(parsed.family, archive, _pairs(check_with, "--check-with"))
    typer.echo(f"published {result['family']} version {result['version']} "
               f"(sha256 {result['sha256'][:12]})")


def versions(family: str, url: str = URL, key: str | None = KEY) -> None:
    """List a family's versions, aliases and approvals."""
    with _client(url, key) as client:
        data = client.versions(family)
    typer.echo(f"{family}: " + ", ".join(f"{a}={v}" for a, v in sorted(data["aliases"].items())))
    for v in data["versions"]:
        typer.echo(f"  v{v['version']:<4} {v['sha256'][:12]}  {v['created_at'][:19]}  "
                   f"by {v['created_by']['name']:<16} approvals={v['approvals']}  "
                   f"{','.join(v['aliases']) or '-':<22} {v['label']}")


def approve(family: str, version: int, note: str = typer.Option("", help="Why."),
            url: str = URL, key: str | None = KEY) -> None:
    """Approve a version (approver role; not the key that published it)."""
    with _client(url, key) as client:
        data = client.approve(family, version, note)
    typer.echo(f"approved {family} version {version} ({len(data['approved_by'])} approval(s))")


def promote(family: str | None = typer.Argument(None), version: int | None = typer.Argument(None),
            alias: str = typer.Option("production", help="production, staging or challenger"),
            set_: list[str] = typer.Option([], "--set", help="family=version; several move "
                                                              "atomically (repeatable)."),
            note: str = typer.Option("", help="Why."),
            allow_breaking: bool = typer.Option(
                False, "--allow-breaking",
                help="Let a features version break what callers send today (a feature "
                     "removed, a range narrowed, ...)."),
            url: str = URL, key: str | None = KEY) -> None:
    """Point an alias at a version: `promote churn 3` or `promote --set churn=3 --set catalog=2`."""
    targets = _pairs(set_, "--set")
    if family is not None:
        if version is None:
            raise typer.BadParameter("give FAMILY and VERSION, or --set family=version")
        targets[family] = version
    if not targets:
        raise typer.BadParameter("nothing to promote")
    with _client(url, key) as client:
        data = client.move([(f, alias, v) for f, v in targets.items()], note,
                           allow_breaking=allow_breaking)
    for m in data["moves"]:
        typer.echo(f"{m['family']} {m['alias']}: {m['previous_version']} -> {m['version']}")
        changes = m.get("detail", {}).get("contract_changes") or {}
        for kind in ("breaking", "additive"):
            for change in changes.get(kind, []):
                typer.echo(f"  {kind}: {change}")
    for m in data.get("unchanged", []):
        typer.echo(f"{m['family']} {m['alias']}: already {m['version']} (unchanged, "
                   "not recorded)")


def rollback(family: str, note: str = typer.Option("", help="Why."),
             url: str = URL, key: str | None = KEY) -> None:
    """Move production back to the previous production version."""
    with _client(url, key) as client:
        m = client.rollback(family, note)
    typer.echo(f"{family} production: {m['previous_version']} -> {m['version']} (rollback)")


def history(family: str, url: str = URL, key: str | None = KEY) -> None:
    """Every alias move of a family: when, who, from and to."""
    with _client(url, key) as client:
        data = client.history(family)
    for m in data["moves"]:
        typer.echo(f"{m['at'][:19]}  {m['alias']:<10} {m['previous_version']} -> "
                   f"{m['version']}  {m['detail'].get('reason', ''):<8} by {m['actor']['name']}")


def ledger(after_id: int = typer.Option(0), limit: int = typer.Option(100),
           url: str = URL, key: str | None = KEY) -> None:
    """Print a page of the ledger (approver or admin)."""
    with _client(url, key) as client:
        data = client.ledger(after_id=after_id, limit=limit)
    for e in data["entries"]:
        target = f"{e['family'] or ''} v{e['version']}" if e["version"] else (e["family"] or "")
        typer.echo(f"#{e['id']:<5} {e['at'][:19]}  {e['action']:<10} {target:<14} "
                   f"{e['alias'] or '':<10} by {e['actor']['name']} ({e['actor']['role']})")
    if data["next_after_id"]:
        typer.echo(f"… more: --after-id {data['next_after_id']}")


_COMMANDS: tuple[Callable[..., None], ...] = (push, versions, approve, promote, rollback,
                                              history, ledger)


def register(cli: typer.Typer) -> None:
    """Attach the registry commands to the root `tierwise` command."""
    cli.add_typer(db_app, name="db")
    cli.add_typer(keys_app, name="keys")
    for command in _COMMANDS:
        cli.command()(command)
    from app.registry.report_command import report

    cli.command()(report)
