"""The benchmarks load the default bundles as the service does: every family, incl. the
feature contract (a bench that cannot load them would only fail when someone runs it)."""

from __future__ import annotations

from app.bundles.manifest import FAMILIES
from bench.inprocess import customer_rows, load_context
from tests.conftest import MODELS_DIR


def test_the_benchmarks_load_every_default_family() -> None:
    ctx = load_context(MODELS_DIR)
    assert set(ctx.versions) == set(FAMILIES)
    rows = customer_rows(ctx, 5)
    assert rows.shape == (5, len(ctx.schema))
