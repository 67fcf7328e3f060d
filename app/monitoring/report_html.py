"""`tierwise report`: the monitoring report as one self-contained HTML page (inline CSS and
SVG, no script, no external asset) for a model-risk review."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from app.monitoring import plots

CSS = ("body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
       "padding:2px 6px;font-size:90%;text-align:right}th{background:#f4f4f4}"
       "td:first-child,th:first-child{text-align:left}.alert{color:#b00}")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _interval(iv: Any) -> str:
    return "–" if not iv else f"[{_pct(iv[0])}, {_pct(iv[1])}]"


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _alerts(report: Mapping[str, Any]) -> str:
    alerts = report.get("alerts") or []
    if not alerts:
        return "<p>No alert.</p>"
    items = []
    for a in alerts:
        where = f'{a.get("family")} v{a.get("version")}' + (
            f' ({a["alias"]})' if a.get("alias") else "")
        what = a.get("feature") or ("score" if a["kind"] == "score_drift" else "ECE")
        items.append(f'<li class="alert">{escape(a["kind"])}: {escape(where)} {escape(what)} '
                     f'= {a["value"]:.4f} &gt; {a["threshold"]:.4f}</li>')
    return "<ul>" + "".join(items) + "</ul>"


def _drift(report: Mapping[str, Any]) -> str:
    psi_alert = float(report.get("thresholds", {}).get("psi", 0.25))
    parts = []
    for e in report.get("drift") or []:
        name = f'{e["family"]} v{e["version"]} ({e["alias"]}), {e["rows"]} customers scored'
        parts.append(f"<h3>{escape(name)}</h3>")
        if not e["reference"]:
            parts.append("<p>No reference: this bundle was made before training references "
                         "were recorded.</p>")
            continue
        values = [(f["feature"], f["psi"]) for f in e["features"] if f["psi"] is not None]
        parts.append(plots.hbars(f"PSI per feature, {e['family']} v{e['version']}",
                                 values, threshold=psi_alert))
        score = e.get("score")
        if score:
            total_e, total_a = sum(score["expected"]) or 1, sum(score["actual"]) or 1
            parts.append(plots.bars(
                f"churn probability: training reference vs scored (PSI {score['psi']:.3f})",
                score["bins"], {"reference": [c / total_e for c in score["expected"]],
                                "scored": [c / total_a for c in score["actual"]]}))
    return "".join(parts) or "<p>Nothing scored in the window.</p>"


def _calibration(report: Mapping[str, Any]) -> str:
    cal = report.get("calibration") or {}
    parts = []
    if cal.get("churn_note"):
        parts.append(f"<p>Churn: {escape(cal['churn_note'])}.</p>")
    for kind, what, unit in (("churn", "churned", "customers"),
                             ("products", "converted", "decisions")):
        for version, table in (cal.get(kind) or {}).items():
            points = [(b["predicted"], b["observed"], *(b["interval_95"] or (0, 0)), b["n"])
                      for b in table["bands"]]
            ece = table.get("ece")
            parts.append(f"<h3>{escape(version)}: {table['n']} {unit}, ECE "
                         f"{'–' if ece is None else f'{ece:.4f}'}</h3>")
            parts.append(plots.calibration_curve(f"{version}: predicted vs {what}", points))
            parts.append(_table(["band", "n", "predicted", "observed", "95% interval"], [
                [f"{b['band'][0]:.1f}–{b['band'][1]:.1f}", str(b["n"]), _pct(b["predicted"]),
                 _pct(b["observed"]), _interval(b["interval_95"])] for b in table["bands"]]))
    return "".join(parts) or "<p>No outcomes with a predicted probability in the window.</p>"


def _actions(report: Mapping[str, Any]) -> str:
    parts = []
    for a in report.get("actions") or []:
        parts.append(f"<h3>{escape(a['action_id'])}</h3>")
        rows = [(f"version {v}", r["rate"], *r["interval_95"])
                for v, r in a["by_version"].items() if r["interval_95"]]
        rows += [(f"alias {al}", r["rate"], *r["interval_95"])
                 for al, r in a["by_alias"].items() if r["interval_95"]]
        if rows:
            parts.append(plots.intervals(f"acceptance of {a['action_id']} (95% Wilson)", rows))
        for key in ("versions_compared", "aliases_compared"):
            c = a.get(key)
            if c:
                parts.append(f"<p><b>{escape(c['conclusion'])}</b>: difference "
                             f"{_pct(c['difference'])}, 95% interval "
                             f"{_interval(c['interval_95'])}.</p>")
        u = a.get("uplift")
        if u:
            parts.append(f"<p>Uplift against the control group: {_pct(u['uplift'])}, 95% "
                         f"interval {_interval(u['interval_95'])} (treatment "
                         f"{u['treatment']['converted']}/{u['treatment']['n']}, control "
                         f"{u['control']['converted']}/{u['control']['n']}).</p>")
    return "".join(parts) or "<p>No outcomes in the window.</p>"


def render(report: Mapping[str, Any], *, title: str = "tierwise monitoring report") -> str:
    """The whole page."""
    window = report.get("window", {})
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1><p>Window: {escape(str(window.get('since')))} to "
            f"{escape(str(window.get('until')))} (UTC days). Thresholds: "
            f"{escape(str(report.get('thresholds', {})))}.</p>"
            f"<h2>Alerts</h2>{_alerts(report)}"
            f"<h2>Acceptance and uplift by action</h2>{_actions(report)}"
            f"<h2>Calibration</h2>{_calibration(report)}"
            f"<h2>Drift against the training reference</h2>{_drift(report)}"
            "</body></html>\n")
