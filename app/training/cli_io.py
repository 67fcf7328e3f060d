"""What the training commands share: checking and writing bundle directories, one-line
errors, headline metrics (kept apart so each command module can import them)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from app.bundles.io import MANIFEST, Bundle, read_dir, to_archive, write_dir

SEED_HELP = "Seed of the train/test split and of LightGBM (same seed, same bundle bytes)."
ARCHIVE_HELP = "Also write DIR.tar.gz, the form `POST /v1/models/{family}/versions` takes."


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _summary(bundle: Bundle) -> str:
    """One line of headline metrics for a freshly trained bundle."""
    m = bundle.manifest.metrics
    if bundle.family == "tier" and bundle.manifest.wealth is not None:
        t = m["test"]
        return (f"log-wealth MAE {t['log_wealth']['mae']}, tier accuracy "
                f"{t['tier']['accuracy']} {t['tier']['accuracy_ci95']} (booked from AUM "
                f"{t['baseline_booked_tier_from_aum']['accuracy']}), macro-F1 "
                f"{t['tier']['macro_f1']}, n={t['rows']}, {m['trees']} trees")
    if bundle.family == "tier":
        return (f"macro-F1 {m['model']['macro_f1']} (majority baseline "
                f"{m['baselines']['majority_class']['macro_f1']}), {m['trees']} trees")
    if bundle.family == "churn":
        c = m["calibrated"]
        ci = c.get("intervals_95", {})
        return (f"test n={c.get('n', m['test_rows'])} positives={c.get('positives', '?')}: "
                f"AUC {c['auc']} {_ci(ci.get('auc'))}, ECE {m['uncalibrated']['ece']} → "
                f"{c['ece']}{_upper(ci.get('ece'))} ({m['calibration']['chosen']}), "
                f"{m['trees']} trees")
    if bundle.family == "products":
        return f"mean AUC {m['mean_auc']}, min AUC {m['min_auc']}, {m['trees']} trees"
    return ""


def _upper(pair: Any) -> str:
    """The ECE's bootstrap upper bound: a resample's ECE carries extra binning noise, so the
    percentile interval sits above a small estimate; only its upper end is informative."""
    return f" (95% upper bound {pair[1]:.4f})" if pair else ""


def _ci(pair: Any) -> str:
    return f"[95% {pair[0]:.4f}–{pair[1]:.4f}]" if pair else ""


def check_out(out: Path) -> None:
    """Refuse an output path that holds something other than a bundle (before training)."""
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())
    ):
        raise typer.BadParameter(f"{out} exists and is not a bundle directory",
                                 param_hint="--out")


def write_bundle(bundle: Bundle, out: Path, *, archive: bool = False) -> None:
    """Write `bundle` as directory `out` (replacing an older bundle there) and read it back."""
    out = Path(out)
    check_out(out)
    if out.exists():
        shutil.rmtree(out)  # stale files of an older bundle would make this one unreadable
    write_dir(bundle, out)
    if read_dir(out).sha256 != bundle.sha256:
        raise RuntimeError(f"{out} does not read back as the bundle just written")
    line = f"{bundle.family}: {out} sha256 {bundle.sha256}"
    if archive:
        target = out.with_name(out.name + ".tar.gz")
        target.write_bytes(to_archive(bundle))
        line += f" (+ {target.name})"
    typer.echo(line)
    if summary := _summary(bundle):
        typer.echo(f"  {summary}")


def _guarded(run: Callable[[], Any]) -> Any:
    """Run a training step, turning data problems into a one-line error and exit code 2."""
    try:
        return run()
    except (ValueError, FileNotFoundError, OSError) as exc:
        _err(str(exc))
        raise typer.Exit(2) from None


def _book(data: Path) -> dict[str, Any]:
    from app.training.synth import read_book

    if not data.is_file():
        raise typer.BadParameter(f"{data} is not a file", param_hint="--data")
    return _guarded(lambda: read_book(data))
