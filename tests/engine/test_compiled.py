"""The native tree walker gives Booster.predict's raw scores, and falls back when it cannot."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from app.bundles.manifest import FAMILIES
from app.config import PROJECT_ROOT
from app.engine import native
from app.engine import walker as walker_module
from app.engine.compiled import check_against_booster, fastest_evaluator, max_difference, probe_rows
from app.engine.evaluate import BoosterEvaluator, ModelLayout, RawScores
from app.engine.flatten import FlatModels
from app.engine.model_text import parse_model
from app.engine.native import BuildError
from app.engine.trees import TreeModel
from app.engine.walker import ISA_NAMES, TreeWalkEvaluator
from app.features.schema import FeatureSchema
from app.features.spec import FeatureSpec
from tests.support.engine import use_isa, warm_cache

SEGMENTS = tuple(f"s{i}" for i in range(40))  # > 32 categories: two-word bitsets
SPECS = (
    FeatureSpec(name="amount", kind="number", minimum=0, maximum=1e6),
    FeatureSpec(name="score", kind="number", minimum=-100, maximum=100),
    FeatureSpec(name="visits", kind="integer", minimum=0, maximum=1000),
    FeatureSpec(name="flag", kind="boolean"),
    FeatureSpec(name="segment", kind="category", categories=SEGMENTS),
    FeatureSpec(name="channel", kind="category", categories=("a", "b", "c", "d")),
    FeatureSpec(name="ratio", kind="number", minimum=-1, maximum=1),
)
SCHEMA = FeatureSchema(SPECS)
ALL = {"tier": True, "churn": True, "products": True}


def _data(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.column_stack([
        np.exp(rng.normal(8, 2, n)).clip(0, 1e6),
        rng.normal(0, 30, n).clip(-100, 100),
        rng.poisson(20, n).astype(float),
        rng.integers(0, 2, n).astype(float),
        rng.integers(0, len(SEGMENTS), n).astype(float),
        rng.integers(0, 4, n).astype(float),
        np.where(rng.random(n) < 0.3, 0.0, rng.uniform(-1, 1, n)),
    ])
    x[rng.random(x.shape) < 0.12] = np.nan
    return x


def _signal(x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    seg_effect = rng.normal(0, 1, len(SEGMENTS))
    z = np.nan_to_num(x, nan=0.0)
    s = (np.log1p(z[:, 0]) / 4 - z[:, 1] / 40 + np.sqrt(z[:, 2]) / 3 + z[:, 3]
         + seg_effect[z[:, 4].astype(int)] + (z[:, 5] == 2) - 2 * z[:, 6]
         + np.isnan(x[:, 6]) + (x[:, 6] == 0))
    return s + rng.normal(0, 0.5, len(s))


def _train(name: str, x: np.ndarray, y: np.ndarray, names: list[str], objective: str,
           rounds: int = 25, **params: object) -> TreeModel:
    base = {
        "objective": objective, "num_leaves": 31, "min_data_in_leaf": 5, "learning_rate": 0.2,
        "min_data_per_group": 5, "cat_smooth": 1.0, "cat_l2": 1.0, "max_cat_threshold": 64,
        "num_threads": 1, "verbosity": -1, "seed": 3, "deterministic": True,
    }
    base.update(params)
    cats = [i for i, n in enumerate(names) if SCHEMA.specs[SCHEMA.index[n]].kind == "category"]
    ds = lgb.Dataset(x, label=y, feature_name=names, categorical_feature=cats, params=base)
    booster = lgb.train(base, ds, num_boost_round=rounds)
    return TreeModel.from_text(name, booster.model_to_string())


@pytest.fixture(scope="module")
def layout() -> ModelLayout:
    x = _data(3000, seed=1)
    names = list(SCHEMA.names)
    s = _signal(x, seed=2)
    tier = _train("tier", x, np.digitize(s, np.quantile(s, [0.3, 0.7])), names, "multiclass",
                  num_class=3, rounds=15)
    churn = _train("churn", x, (s > np.median(s)).astype(int), names, "binary", num_leaves=63)
    y = (_signal(x, seed=4) > 0.5).astype(int)
    zero = _train("zero_missing", x, y, names, "binary", zero_as_missing=True)
    no_missing = _train("no_missing", x, y, names, "binary", use_missing=False)
    onehot = _train("onehot", x, y, names, "binary", max_cat_to_onehot=64)
    perm = ["ratio", "segment", "amount", "flag"]  # a subset, in another order
    subset = _train("subset", x[:, SCHEMA.columns(perm)], y, perm, "binary")
    stump = _train("stump", x, y, names, "binary", rounds=3, min_gain_to_split=1e12)
    products = (zero, no_missing, onehot, subset, stump)
    return ModelLayout(schema=SCHEMA, tier=tier, churn=churn, products=products)


@pytest.fixture(scope="module")
def walker(layout: ModelLayout, walker_library: Path,
           tmp_path_factory: pytest.TempPathFactory) -> TreeWalkEvaluator:
    cache = tmp_path_factory.mktemp("compiled")
    warm_cache(walker_library, cache)  # test_fastest_evaluator_checks_and_caches compiles
    return TreeWalkEvaluator(layout, cache_dir=cache)


@pytest.fixture
def cache(walker_library: Path, tmp_path: Path) -> Path:
    """A compile cache of this test's own, warm: the walker loads without compiling."""
    warm_cache(walker_library, tmp_path / "warm")
    return tmp_path / "warm"


def _assert_same(got: RawScores, want: RawScores, tol: float = 1e-12) -> None:
    assert max_difference(got, want) <= tol


def test_models_cover_every_split_kind(layout: ModelLayout, walker: TreeWalkEvaluator) -> None:
    kinds = {m.name: parse_model(m.text) for m in layout.all_models()}
    decisions = {name: {d for t in p.trees for d in t.decision_type} for name, p in kinds.items()}
    assert any(d & 1 for ds in decisions.values() for d in ds), "no categorical split"
    assert any((d >> 2) & 3 == 1 for d in decisions["zero_missing"]), "no zero-as-missing split"
    assert all((d >> 2) & 3 == 0 for d in decisions["no_missing"] if not d & 1)
    assert any(len(t.cat_threshold) > 1 for p in kinds.values() for t in p.trees), \
        "no multi-word category bitset"
    assert all(t.num_leaves == 1 for t in kinds["stump"].trees)
    assert any(not math.isfinite(v) for p in kinds.values() for t in p.trees
               for v, d in zip(t.threshold, t.decision_type, strict=True) if not d & 1), \
        "no infinite threshold (NaN against everything else)"
    assert len(walker.flat.root) == sum(m.num_trees for m in layout.all_models())


def test_equal_to_booster_on_random_rows(layout: ModelLayout, walker: TreeWalkEvaluator) -> None:
    x = probe_rows(SCHEMA, 10_000, seed=11, thresholds=walker.flat.thresholds)
    want = BoosterEvaluator(layout).raw(x, **ALL)
    got = walker.raw(x, **ALL)
    _assert_same(got, want)
    assert got.tier is not None and got.tier.shape == (10_000, 3)
    assert got.churn is not None and got.churn.shape == (10_000,)
    assert got.products is not None and got.products.shape == (10_000, len(layout.products))
    # Bit for bit, in fact: the walker sums the same doubles in the same order.
    assert np.array_equal(got.tier, want.tier) and np.array_equal(got.churn, want.churn)
    assert np.array_equal(got.products, want.products)


def test_single_rows_and_parts(layout: ModelLayout, walker: TreeWalkEvaluator) -> None:
    x = probe_rows(SCHEMA, 64, seed=12, thresholds=walker.flat.thresholds)
    full = walker.raw(x, **ALL)
    for i in range(len(x)):
        one = walker.raw(x[i:i + 1], **ALL)
        assert one.churn is not None and full.churn is not None
        assert one.churn[0] == full.churn[i]
        assert np.array_equal(one.products, full.products[i:i + 1])  # type: ignore[index]
    only = walker.raw(x, tier=False, churn=True, products=False)
    assert only.tier is None and only.products is None
    assert np.array_equal(only.churn, full.churn)
    some = walker.raw(x, tier=True, churn=False, products=True)
    assert some.churn is None
    assert np.array_equal(some.tier, full.tier) and np.array_equal(some.products, full.products)
    empty = walker.raw(x[:0], **ALL)
    assert empty.tier is not None and empty.tier.shape == (0, 3)
    # Non-contiguous and float32 input are accepted; a wrong width is refused.
    wide = np.repeat(x, 2, axis=1)[:, ::2]
    _assert_same(walker.raw(wide, **ALL), full, 0.0)
    with pytest.raises(ValueError):
        walker.raw(x[:, :-1], **ALL)


def test_read_only_and_odd_arrays(walker: TreeWalkEvaluator) -> None:
    """Rows the walker cannot write into or read in place give the same scores."""
    x = probe_rows(SCHEMA, 300, seed=16)
    direct = walker.raw(x, **ALL)
    frozen = x.copy()
    frozen.flags.writeable = False
    _assert_same(walker.raw(frozen, **ALL), direct, 0.0)
    _assert_same(walker.raw(np.asfortranarray(x), **ALL), direct, 0.0)
    assert direct.tier is not None and direct.churn is not None and direct.products is not None
    first = RawScores(tier=direct.tier[:1], churn=direct.churn[:1], products=direct.products[:1])
    _assert_same(walker.raw(x[:1], **ALL), first, 0.0)
    _assert_same(walker.raw(frozen[:1], **ALL), first, 0.0)
    every_other = RawScores(tier=direct.tier[::2], churn=direct.churn[::2],
                            products=direct.products[::2])
    _assert_same(walker.raw(x[::2], **ALL), every_other, 0.0)


def test_edge_values(layout: ModelLayout, walker: TreeWalkEvaluator) -> None:
    z = float(np.float32(1e-35))
    specials = [math.nan, 0.0, -0.0, z, -z, np.nextafter(z, 1), 1e-300, -1e-300, math.inf,
                -math.inf, 1e300, -1e300, -0.5, -1.0, -1.5, 31.0, 32.0, 39.0, 40.0, 63.5, 64.0,
                2.0**31, 2.0**31 - 1, -(2.0**31), 1e19]
    x = np.array([[v] * len(SCHEMA) for v in specials])
    rng = np.random.default_rng(5)
    mixed = probe_rows(SCHEMA, 2000, seed=13)
    mask = rng.random(mixed.shape) < 0.5
    mixed[mask] = rng.choice(specials, mask.sum())
    rows = np.vstack([x, mixed])
    _assert_same(walker.raw(rows, **ALL), BoosterEvaluator(layout).raw(rows, **ALL), 0.0)


def test_threads_share_one_walker(layout: ModelLayout, walker: TreeWalkEvaluator) -> None:
    x = probe_rows(SCHEMA, 400, seed=14)
    want = walker.raw(x, **ALL)
    errors: list[str] = []

    def work(seed: int) -> None:
        r = np.random.default_rng(seed)
        for _ in range(60):
            i = int(r.integers(0, len(x) - 8))
            n = int(r.integers(1, 8))
            got = walker.raw(x[i:i + n], **ALL)
            if not (np.array_equal(got.churn, want.churn[i:i + n])  # type: ignore[index]
                    and np.array_equal(got.tier, want.tier[i:i + n])):  # type: ignore[index]
                errors.append(f"rows {i}:{i + n}")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_fastest_evaluator_checks_and_caches(layout: ModelLayout, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_libs", {})  # as in a fresh process
    ev = fastest_evaluator(layout, cache_dir=tmp_path)
    assert isinstance(ev, TreeWalkEvaluator)
    (so,) = tmp_path.glob("treewalk-*.so")  # kept in the cache, named by the source's sha256
    assert so.name == f"treewalk-{native.library_key(native.find_compiler(None))[:24]}.so"
    assert check_against_booster(ev, layout) == 0.0
    monkeypatch.setattr(native, "_libs", {})
    stamp = so.stat().st_mtime_ns
    assert isinstance(fastest_evaluator(layout, cache_dir=tmp_path), TreeWalkEvaluator)
    assert so.stat().st_mtime_ns == stamp, "the next process loads it without compiling"


@pytest.mark.parametrize("how", ["parameter", "env", "failing"])
def test_fallback_without_compiler(layout: ModelLayout, tmp_path: Path, how: str,
                                   monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(native, "_warned", set())
    monkeypatch.setattr(native, "_libs", {})
    cc: str | None = None
    if how == "parameter":
        cc = str(tmp_path / "no-such-cc")
    elif how == "env":
        monkeypatch.setenv("TIERWISE_CC", str(tmp_path / "no-such-cc"))
    else:
        fake = tmp_path / "broken-cc"
        fake.write_text("#!/bin/sh\necho 'broken compiler' >&2\nexit 1\n")
        fake.chmod(0o755)
        cc = str(fake)
    with caplog.at_level(logging.WARNING, logger="tierwise.scoring"):
        first = fastest_evaluator(layout, cache_dir=tmp_path / "cache", cc=cc)
        second = fastest_evaluator(layout, cache_dir=tmp_path / "cache", cc=cc)
    assert isinstance(first, BoosterEvaluator) and isinstance(second, BoosterEvaluator)
    warnings = [r for r in caplog.records if r.name == "tierwise.scoring"
                and r.levelno == logging.WARNING]
    assert len(warnings) == 1, "logged once"
    assert "plain LightGBM" in warnings[0].getMessage()
    x = probe_rows(SCHEMA, 2000, seed=15)
    _assert_same(first.raw(x, **ALL), BoosterEvaluator(layout).raw(x, **ALL), 0.0)


def test_a_wrong_fast_path_never_serves(layout: ModelLayout, cache: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_warned", set())
    real = TreeWalkEvaluator.raw

    def off_by_a_little(self: TreeWalkEvaluator, x: np.ndarray, **kw: bool) -> RawScores:
        r = real(self, x, **kw)
        return RawScores(tier=r.tier, churn=None if r.churn is None else r.churn + 1e-7,
                         products=r.products)

    monkeypatch.setattr(TreeWalkEvaluator, "raw", off_by_a_little)
    assert isinstance(fastest_evaluator(layout, cache_dir=cache), BoosterEvaluator)


def test_a_failing_build_falls_back(layout: ModelLayout, cache: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: ModelLayout) -> FlatModels:
        raise RuntimeError("boom")

    monkeypatch.setattr(walker_module, "flatten", broken)
    assert isinstance(fastest_evaluator(layout, cache_dir=cache), BoosterEvaluator)


def test_unsupported_model_falls_back(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_warned", set())
    x = _data(1000, seed=6)[:, [0, 1, 2, 6]]
    names = ["amount", "score", "visits", "ratio"]
    y = _signal(_data(1000, seed=6), seed=7)
    linear = _train("linear", np.nan_to_num(x), (y > 0).astype(int), names, "binary",
                    rounds=5, linear_tree=True)
    lay = ModelLayout(schema=SCHEMA, tier=None, churn=linear, products=())
    assert isinstance(fastest_evaluator(lay, cache_dir=cache), BoosterEvaluator)


MODELS = PROJECT_ROOT / "models"


@pytest.mark.skipif(not all((MODELS / f / "manifest.json").is_file() for f in FAMILIES),
                    reason="models/ holds no default bundles yet (make models)")
def test_default_bundles(cache: Path) -> None:
    from app.bundles import read_dir
    from app.scoring.context import build_context

    bundles = {f: read_dir(MODELS / f) for f in FAMILIES}
    ctx = build_context(bundles, {f: 1 for f in FAMILIES})
    walker = TreeWalkEvaluator(ctx.layout, cache_dir=cache)
    booster = BoosterEvaluator(ctx.layout)
    x = probe_rows(ctx.schema, 10_000, seed=21, thresholds=walker.flat.thresholds)
    _assert_same(walker.raw(x, **ALL), booster.raw(x, **ALL))
    refs = []
    for f in ("tier", "churn", "products"):
        for ref in bundles[f].manifest.reference_rows:
            row = np.empty(len(ctx.schema))
            ctx.schema.encode_into(ref.features, row)  # other families' columns stay NaN
            refs.append(row)
    assert refs, "the bundles carry reference rows"
    rows = np.array(refs)
    _assert_same(walker.raw(rows, **ALL), booster.raw(rows, **ALL))
    for i in range(min(len(rows), 20)):
        _assert_same(walker.raw(rows[i:i + 1], **ALL), booster.raw(rows[i:i + 1], **ALL))


# --------------------------------------------------------------------------------------------
# batches: QuickScorer kernels (trees with <= 64 leaves) and the walk for larger trees

BATCH_SIZES = (8, 15, 16, 17, 33, 127, 128, 129, 1000)


def _kernels(walker: TreeWalkEvaluator) -> list[str]:
    """Every batch kernel this CPU runs (the walker's own one last, left in use)."""
    best = walker.isa
    kernels = [k for k in ISA_NAMES if use_isa(walker, k) == k]
    use_isa(walker, best)
    assert best in kernels and kernels[0] == "walk"
    return [k for k in kernels if k != best] + [best]


def _rows(r: RawScores, i: int, j: int) -> RawScores:
    return RawScores(tier=None if r.tier is None else r.tier[i:j],
                     churn=None if r.churn is None else r.churn[i:j],
                     products=None if r.products is None else r.products[i:j])


def test_quickscorer_arrays(walker: TreeWalkEvaluator) -> None:
    f = walker.flat
    assert set(f.qkind.tolist()) == {32, 64}, "trees of both bitvector widths (churn: 63 leaves)"
    assert np.array_equal(f.qkind, np.where(f.nleaf <= 32, 32, 64))
    assert np.array_equal(f.qn, f.nleaf - 1), "every internal node, once"
    assert len(f.q32) == f.qn[f.qkind == 32].sum() and len(f.q64) == f.qn[f.qkind == 64].sum()
    for t in range(len(f.root)):
        q = (f.q32 if f.qkind[t] == 32 else f.q64)[f.qoff[t]:f.qoff[t] + f.qn[t]]
        bits = 32 if f.qkind[t] == 32 else 64
        cleared = ~q["mask"].astype(np.uint64) & np.uint64(2**bits - 1)
        assert not (cleared >> np.uint64(f.nleaf[t] - 1)).any(), "the last leaf is never cleared"
        assert (cleared != 0).all(), "every left subtree has a leaf"
    assert 2 * f.q32.nbytes + f.q64.nbytes < 4 * f.nodes.nbytes


def test_every_batch_kernel_is_exact(layout: ModelLayout, walker: TreeWalkEvaluator) -> None:
    x = probe_rows(SCHEMA, 1000, seed=31, thresholds=walker.flat.thresholds)
    customers = _data(10_000, seed=32)
    booster = BoosterEvaluator(layout)
    want = booster.raw(x, **ALL)
    want_customers = booster.raw(customers, **ALL)
    singles = [walker.raw(x[i:i + 1], **ALL) for i in range(40)]
    for kernel in _kernels(walker):
        assert use_isa(walker, kernel) == kernel
        assert max_difference(walker.raw(customers, **ALL), want_customers) == 0.0, kernel
        for n in BATCH_SIZES:  # full groups and blocks, partial ones, remainders
            for start in (0, 1):
                got = walker.raw(x[start:start + n], **ALL)
                assert max_difference(got, _rows(want, start, start + n)) == 0.0, (kernel, n)
        got = walker.raw(x[:40], **ALL)
        for i, one in enumerate(singles):  # the single-row path agrees with every kernel
            assert max_difference(_rows(got, i, i + 1), one) == 0.0, (kernel, i)
        part = walker.raw(x[:33], tier=False, churn=True, products=False)
        assert part.tier is None and part.products is None
        assert np.array_equal(part.churn, want.churn[:33])  # type: ignore[index]


def test_trees_over_64_leaves_are_walked(cache: Path) -> None:
    x = _data(3000, seed=41)
    names = list(SCHEMA.names)
    big = _train("big", x, (_signal(x, seed=42) > 0).astype(int), names, "binary",
                 rounds=6, num_leaves=200)
    mid = _train("mid", x, (_signal(x, seed=43) > 1).astype(int), names, "binary",
                 rounds=4, num_leaves=48)
    lay = ModelLayout(schema=SCHEMA, tier=None, churn=big, products=(mid,))
    walker = TreeWalkEvaluator(lay, cache_dir=cache)
    f = walker.flat
    assert (f.nleaf > 64).any() and (f.qkind == 0).any(), "trees too large for 64-bit masks"
    assert (f.qkind[f.nleaf > 64] == 0).all() and (f.qn[f.qkind == 0] == 0).all()
    assert (f.qkind == 64).any(), "and QuickScorer trees in the same batch"
    rows = np.vstack([probe_rows(SCHEMA, 1000, seed=44, thresholds=f.thresholds),
                      _data(1000, seed=45)])
    want = BoosterEvaluator(lay).raw(rows, **ALL)
    for kernel in _kernels(walker):
        use_isa(walker, kernel)
        for n in (*BATCH_SIZES, len(rows)):
            assert max_difference(walker.raw(rows[:n], **ALL), _rows(want, 0, n)) == 0.0
        # Single rows: walked trees mixed with QuickScorer ones, sums still in tree order.
        assert max_difference(_few(walker, rows[:400], **ALL), _rows(want, 0, 400)) == 0.0


@pytest.mark.parametrize("damage", ["mask", "col", "qoff", "kind", "nleaf"])
def test_bad_quickscorer_arrays_are_refused(layout: ModelLayout, cache: Path, damage: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = walker_module.flatten

    def damaged(lay: ModelLayout) -> FlatModels:
        f = real(lay)
        t = int(np.flatnonzero(f.qkind == 32)[0])
        i = int(f.qoff[t])
        if damage == "mask":  # clears the last leaf: the exit leaf could leave the tree
            f.q32["mask"][i] &= ~np.uint32(1 << int(f.nleaf[t] - 1))
        elif damage == "col":
            f.q32["col"][i] = 4 * f.nfeat + len(f.catcols) + 1
        elif damage == "qoff":
            f.qoff[t] = len(f.q32)
        elif damage == "kind":
            f.qkind[t] = 16
        else:
            f.nleaf[t] = 33
        return f

    monkeypatch.setattr(walker_module, "flatten", damaged)
    with pytest.raises(BuildError, match="refused"):
        TreeWalkEvaluator(layout, cache_dir=cache)


def test_compiler_without_vector_kernels(layout: ModelLayout, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """A compiler that cannot build the x86 kernels still gives the (walking) fast path."""
    monkeypatch.setattr(native, "_warned", set())
    monkeypatch.setattr(native, "_libs", {})
    real = native.find_compiler(None)
    fake = tmp_path / "old-cc"
    fake.write_text("#!/bin/sh\ncase \"$*\" in *-DTW_PORTABLE*) ;; "
                    "*) echo 'unknown target attribute' >&2; exit 1;; esac\n"
                    f"exec {real} \"$@\"\n")
    fake.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="tierwise.scoring"):
        ev = fastest_evaluator(layout, cache_dir=tmp_path / "cache", cc=str(fake))
    assert isinstance(ev, TreeWalkEvaluator) and ev.isa == "walk"
    assert use_isa(ev, "avx512") == "walk", "no vector kernel in this build"
    assert any("without them" in r.getMessage() for r in caplog.records)
    x = probe_rows(SCHEMA, 500, seed=51, thresholds=ev.flat.thresholds)
    _assert_same(ev.raw(x, **ALL), BoosterEvaluator(layout).raw(x, **ALL), 0.0)


# --------------------------------------------------------------------------------------------
# single rows: QuickScorer with AVX-512 (local rows in registers), the lock-step walk otherwise


def _few(walker: TreeWalkEvaluator, x: np.ndarray, **parts: bool) -> RawScores:
    """x scored in calls of 1..7 rows (the few-rows path), stitched together."""
    got: list[RawScores] = []
    i, n = 0, 1
    while i < len(x):
        got.append(walker.raw(x[i:i + n], **parts))
        i, n = i + n, n % 7 + 1

    def cat(k: str) -> np.ndarray | None:
        v = [getattr(r, k) for r in got]
        return None if v[0] is None else np.concatenate(v)

    return RawScores(tier=cat("tier"), churn=cat("churn"), products=cat("products"))


def test_every_single_row_kernel_is_exact(layout: ModelLayout, walker: TreeWalkEvaluator) -> None:
    x = np.vstack([probe_rows(SCHEMA, 600, seed=61, thresholds=walker.flat.thresholds),
                   _data(600, seed=62)])
    booster = BoosterEvaluator(layout)
    want = booster.raw(x, **ALL)
    for kernel in _kernels(walker):
        use_isa(walker, kernel)
        assert max_difference(_few(walker, x, **ALL), want) == 0.0, kernel
        for parts in ({"tier": True, "churn": False, "products": False},
                      {"tier": False, "churn": True, "products": True}):
            got = _few(walker, x[:100], **parts)
            ref = booster.raw(x[:100], **parts)
            assert max_difference(got, ref) == 0.0, (kernel, parts)


def test_single_rows_over_many_entries(cache: Path) -> None:
    """Parts comparing hundreds of ranked-row entries: the AVX-512 single-row kernel splits
    them into groups of trees, with local rows of one and more 64-entry table pairs."""
    rng = np.random.default_rng(71)
    n, k = 3000, 100
    schema = FeatureSchema((
        *(FeatureSpec(name=f"f{i}", kind="number", minimum=-10, maximum=10) for i in range(k)),
        FeatureSpec(name="cat", kind="category", categories=SEGMENTS),
    ))
    x = np.column_stack([rng.normal(0, 3, (n, k)), rng.integers(0, len(SEGMENTS), n)])
    x[:, :k][rng.random((n, k)) < 0.1] = np.nan
    x[:, :k][rng.random((n, k)) < 0.1] = 0.0
    y = np.nan_to_num(x[:, :k]) @ rng.normal(0, 1, k) + np.sin(x[:, -1])
    names = list(schema.names)

    def train(name: str, target: np.ndarray, objective: str, **params: object) -> TreeModel:
        base = {"objective": objective, "num_leaves": 31, "min_data_in_leaf": 3,
                "learning_rate": 0.3, "num_threads": 1, "verbosity": -1, "seed": 5,
                "deterministic": True, "feature_fraction": 0.5, "min_data_per_group": 3,
                "cat_smooth": 1.0, "max_cat_threshold": 32}
        base.update(params)
        rounds = int(base.pop("rounds", 30))  # type: ignore[call-overload]
        ds = lgb.Dataset(x, label=target, feature_name=names, categorical_feature=[k],
                         params=base)
        booster = lgb.train(base, ds, num_boost_round=rounds)
        return TreeModel.from_text(name, booster.model_to_string())

    tier = train("tier", np.digitize(y, np.quantile(y, [0.3, 0.7])), "multiclass", num_class=3,
                 rounds=25)
    churn = train("churn", (y > 0).astype(int), "binary", num_leaves=63, rounds=40,
                  zero_as_missing=True)
    prod = train("prod", (y > 1).astype(int), "binary", rounds=60)
    lay = ModelLayout(schema=schema, tier=tier, churn=churn, products=(prod,))
    walker = TreeWalkEvaluator(lay, cache_dir=cache)
    f = walker.flat
    for t0, t1 in f.part_t.tolist():  # entries each part compares: more than 2 x 64
        kinds = f.qkind[t0:t1]
        cols = np.concatenate(
            [(f.q32 if kind == 32 else f.q64)["col"][o:o + q]
             for kind, o, q in zip(kinds, f.qoff[t0:t1], f.qn[t0:t1], strict=True)])
        assert len(np.unique(cols)) > 128, (t0, t1, f.nleaf[t0:t1].tolist()[:10])
    rows = np.vstack([probe_rows(schema, 700, seed=72, thresholds=f.thresholds), x[:300]])
    want = BoosterEvaluator(lay).raw(rows, **ALL)
    for kernel in _kernels(walker):
        use_isa(walker, kernel)
        assert max_difference(_few(walker, rows, **ALL), want) == 0.0, kernel
        assert max_difference(walker.raw(rows, **ALL), want) == 0.0, kernel
