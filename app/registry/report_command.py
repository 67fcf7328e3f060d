"""`tierwise report --out report.html`: the monitoring report of a running service (--url,
--key) or straight from the registry database (TIERWISE_DATABASE_URL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import typer


def _from_service(url: str, key: str | None, params: dict[str, str]) -> dict[str, Any]:
    import httpx

    from app.registry.client import RegistryClient, RegistryClientError

    report: dict[str, Any] = {}
    try:
        with RegistryClient(url, key) as client:
            for part in ("drift", "calibration", "actions", "alerts"):
                report.update(client.monitoring(part, params))
    except RegistryClientError as exc:
        typer.echo(exc.describe(), err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    return report


def _from_database(since: dt.date | None, until: dt.date | None,
                   family: str) -> dict[str, Any]:
    from app.config import get_settings
    from app.registry import monitoring as queries
    from app.registry.database import make_engine, make_sessionmaker
    from app.registry.monitor import build_report, thresholds_of

    settings = get_settings()
    until = until or dt.datetime.now(dt.UTC).date()
    since = since or dt.date.fromordinal(
        max(1, until.toordinal() - (settings.monitoring_window_days - 1)))
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = queries.outcome_records(session, since=since, until=until)
            return build_report(
                session, since=since, until=until, outcome_rows=rows, family=family,
                thresholds=thresholds_of(settings))
    finally:
        engine.dispose()


def _day(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("use YYYY-MM-DD", param_hint=name) from None


def report(
    out: Path = typer.Option(..., "--out", help="The HTML file to write."),
    url: str | None = typer.Option(
        None, "--url", help="A running service to ask (GET /v1/monitoring/...); without it, "
        "the registry database of TIERWISE_DATABASE_URL is read directly."),
    key: str | None = typer.Option(None, "--key", envvar="TIERWISE_API_KEY",
                                   help="API key (env TIERWISE_API_KEY) for --url."),
    since: str | None = typer.Option(None, help="First day (YYYY-MM-DD); default: the "
                                     "monitoring window before --until."),
    until: str | None = typer.Option(None, help="Last day (YYYY-MM-DD); default: today."),
    family: str = typer.Option("products", help="Compare acceptance by this family's "
                               "versions."),
) -> None:
    """Write the monitoring report (drift, calibration, acceptance and uplift, alerts) as
    one self-contained HTML page."""
    from app.monitoring.report_html import render

    first, last = _day(since, "--since"), _day(until, "--until")
    if url is not None:
        params = {"family": family}
        params.update({k: v.isoformat() for k, v in (("since", first), ("until", last)) if v})
        data = _from_service(url, key, params)
    else:
        data = _from_database(first, last, family)
    out.write_text(render(data), encoding="utf-8")
    typer.echo(f"wrote {out}: {len(data.get('alerts') or [])} alert(s), "
               f"{len(data.get('actions') or [])} action(s), "
               f"{len(data.get('drift') or [])} scored version(s)")
