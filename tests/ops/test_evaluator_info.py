"""/metrics says which evaluator serves production: tierwise_evaluator_info{evaluator, isa}."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.bundles import Bundle
from app.bundles.manifest import FAMILIES
from app.config import Settings
from app.engine.compiled import evaluator_info, fastest_evaluator
from app.main import create_app
from app.scoring.context import build_context
from app.scoring.static import StaticContexts
from tests.conftest import RunningServer
from tests.ops.scrape import scrape, series, value
from tests.support.engine import warm_cache


@pytest.mark.parametrize("fast", [True, False], ids=["treewalk", "lightgbm"])
def test_the_serving_evaluator_and_its_kernels_are_a_metric(
        default_bundles: dict[str, Bundle], walker_library: Path, tmp_path: Path,
        fast: bool) -> None:
    ctx = build_context(default_bundles, dict.fromkeys(FAMILIES, 1))
    if fast:
        ctx.use_evaluator(fastest_evaluator(ctx.layout,
                                            cache_dir=warm_cache(walker_library, tmp_path).parent))
    name, isa = evaluator_info(ctx.evaluator)
    assert name == ("treewalk" if fast else "lightgbm")
    app = create_app(Settings(auth_enabled=False), live=StaticContexts(ctx))
    with RunningServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        samples = scrape(c)
    assert value(samples, "tierwise_evaluator_info", evaluator=name, isa=isa) == 1
    live = [s for s in series(samples, "tierwise_evaluator_info")
            if value(samples, "tierwise_evaluator_info", **s) == 1]
    assert live == [{"evaluator": name, "isa": isa}]
