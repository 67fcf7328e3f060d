"""The synthetic bank book: contract, determinism, documented causal rules, file round trip."""

from __future__ import annotations

import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from app.features.contract import DEFAULT_FEATURES
from app.training import synth
from app.training.synth import (
    HOLDING_FLAGS,
    PRODUCTS,
    TIER_THRESHOLDS,
    WALLET_TIERS,
    generate_book,
    read_book,
    write_book,
)

N = 50_000


@pytest.fixture(scope="module")
def book() -> dict[str, np.ndarray]:
    return generate_book(N, seed=11)


def _missing(v: np.ndarray) -> np.ndarray:
    if v.dtype == object:
        return np.array([x is None for x in v])
    if v.dtype == bool:
        return np.zeros(len(v), dtype=bool)
    return np.isnan(v.astype(float))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f":
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return a.dtype == b.dtype and a.tolist() == b.tolist()


def test_columns_and_lengths(book: dict[str, np.ndarray]) -> None:
    expected = {"customer_id", *(f.name for f in DEFAULT_FEATURES), *synth.TRUTH_COLUMNS,
                *synth.RECORD_COLUMNS}
    assert synth.RECORD_COLUMNS == ("wallet_wealth", "offered_product")
    expected |= {f"bought_{p}" for p in PRODUCTS}
    assert set(book) == expected
    assert all(len(v) == N for v in book.values())
    ids = book["customer_id"]
    assert ids.dtype == object and ids[0] == "C000000001" and ids[-1] == f"C{N:09d}"
    assert all(re.fullmatch(r"C\d{9}", x) for x in ids[:1000])
    assert len(set(ids)) == N


def test_every_value_passes_its_feature_spec(book: dict[str, np.ndarray]) -> None:
    rows = slice(0, 3_000)
    for spec in DEFAULT_FEATURES:
        for value in book[spec.name][rows].tolist():
            value = None if isinstance(value, float) and np.isnan(value) else value
            problem = spec.check(value)
            assert problem is None, f"{spec.name}={value!r}: {problem}"


def test_missing_values_only_where_allowed(book: dict[str, np.ndarray]) -> None:
    for spec in DEFAULT_FEATURES:
        share = _missing(book[spec.name]).mean()
        if not spec.nullable:
            assert share == 0, spec.name
        assert share < 0.7, spec.name
    for name in ("occupation_class", "risk_profile", "monthly_salary", "days_to_next_maturity",
                 "loans_other_banks", "outflow_trend_90d", "days_since_last_contact"):
        assert _missing(book[name]).mean() > 0.005, name
    # salary only for payroll customers; maturity only with a term deposit or wealth product
    assert np.array_equal(np.isnan(book["monthly_salary"]), ~book["payroll_customer"])
    maturing = (book["term_deposit_balance"] > 0) | (book["wealth_product_balance"] > 0)
    assert np.array_equal(np.isnan(book["days_to_next_maturity"]), ~maturing)
    unassessed = _missing(book["risk_profile"])
    assert np.array_equal(np.isnan(book["risk_assessment_age_days"]), unassessed)
    expired = book["risk_assessment_age_days"][~unassessed] > 365
    assert 0.1 < expired.mean() < 0.4


def test_deterministic_per_seed_and_independent_of_chunking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, c = generate_book(2_500, 5), generate_book(2_500, 5), generate_book(2_500, 6)
    for k in a:
        assert _same(a[k], b[k]), k
    assert not np.array_equal(a["true_wealth"], c["true_wealth"])
    monkeypatch.setattr(synth, "CHUNK", 1_000)
    d, e = generate_book(2_500, 5), generate_book(2_500, 5, progress=True)
    for k in d:
        assert _same(d[k], e[k]), k
    assert d["customer_id"][-1] == "C000002500" and len(set(d["customer_id"])) == 2_500
    assert generate_book(0, 1)["age"].shape == (0,)


def test_wallet_tier_and_banks(book: dict[str, np.ndarray]) -> None:
    wealth, tier = book["true_wealth"], book["wallet_tier"]
    idx = np.searchsorted(np.array(TIER_THRESHOLDS), wealth, side="right") - 1
    assert np.array_equal(tier, np.array(WALLET_TIERS, dtype=object)[idx])
    assert set(tier) == set(WALLET_TIERS)
    assert book["n_banks"].min() >= 1 and book["n_banks"].max() <= 4
    high = wealth >= 100_000
    assert 2.6 <= book["n_banks"][high].mean() <= 3.0
    assert book["n_banks"][~high].mean() < book["n_banks"][high].mean() - 0.5
    share = book["aum_total"][high] / wealth[high]
    assert 0.2 <= np.median(share) <= 0.5
    assert np.all(book["aum_total"] <= wealth * (1 + 1e-9) + 0.05)


def test_aum_parts_add_up(book: dict[str, np.ndarray]) -> None:
    parts = np.stack([book[k] for k in ("current_deposit_balance", "term_deposit_balance",
                                        "wealth_product_balance", "fund_balance",
                                        "insurance_value")])
    known = ~np.isnan(parts).any(axis=0)
    assert known.mean() > 0.9
    np.testing.assert_allclose(parts[:, known].sum(axis=0), book["aum_total"][known],
                               rtol=1e-9, atol=0.01)


def test_loans_take_after_income(book: dict[str, np.ndarray]) -> None:
    payroll = book["payroll_customer"]
    mortgage = book["mortgage_balance"]
    salary = book["monthly_salary"]
    has = (mortgage > 0) & payroll
    rho = np.corrcoef(np.log(mortgage[has]), np.log(salary[has]))[0, 1]
    assert rho > 0.6
    others = book["loans_other_banks"]
    assert np.nanmean(others[book["n_banks"] >= 3]) > 2 * np.nanmean(others[book["n_banks"] == 1])


def test_channels_follow_age(book: dict[str, np.ndarray]) -> None:
    young, old = book["age"] < 35, book["age"] >= 65
    total = sum(book[f"txn_count_{c}_90d"] for c in ("branch", "mobile", "online")) + 1e-9
    mobile, branch = book["txn_count_mobile_90d"] / total, book["txn_count_branch_90d"] / total
    assert mobile[young].mean() > mobile[old].mean() + 0.3
    assert branch[old].mean() > branch[young].mean() + 0.3
    assert np.nanmean(book["digital_logins_30d"][young]) > np.nanmean(
        book["digital_logins_30d"][old])


def test_churners_show_the_signs(book: dict[str, np.ndarray]) -> None:
    churn = book["churn_90d"] == 1
    assert set(np.unique(book["churn_90d"])) == {0, 1}
    assert 0.08 <= churn.mean() <= 0.12
    for name, sign in (("balance_trend_90d", -1), ("outflow_trend_90d", 1),
                       ("days_since_last_txn", 1), ("complaints_12m", 1), ("products_held", -1),
                       ("tenure_months", -1), ("digital_logins_30d", -1)):
        diff = np.nanmean(book[name][churn]) - np.nanmean(book[name][~churn])
        assert sign * diff > 0, name


def _matrix(book: dict[str, np.ndarray], rows: slice) -> np.ndarray:
    cols = []
    for spec in DEFAULT_FEATURES:
        v = book[spec.name][rows]
        if spec.kind == "category":
            v = np.array([np.nan if x is None else spec.categories.index(x) for x in v])
        cols.append(v.astype(float))
    return np.column_stack(cols)


def test_churn_signal_is_learnable(book: dict[str, np.ndarray]) -> None:
    train, test = slice(0, 20_000), slice(20_000, N)
    model = lgb.LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=15,
                               verbose=-1, n_jobs=1)
    model.fit(_matrix(book, train), book["churn_90d"][train])
    auc = roc_auc_score(book["churn_90d"][test], model.predict_proba(_matrix(book, test))[:, 1])
    assert auc >= 0.78


def test_product_base_rates_and_holdings(book: dict[str, np.ndarray]) -> None:
    for product in PRODUCTS:
        bought = book[f"bought_{product}"]
        assert set(np.unique(bought)) <= {0, 1}
        assert 0.005 <= bought.mean() <= 0.06, product
        flag = HOLDING_FLAGS.get(product)
        if flag is not None:
            held = book[flag]
            assert held.any() and bought[held].mean() < 0.003, product
            assert bought[held].mean() < bought[~held].mean() / 5, product


_RULES = {
    "sip_fund": lambda b: b["payroll_customer"] & (b["age"] >= 23) & (b["age"] <= 45),
    "money_market_fund": lambda b: b["current_deposit_balance"] > 100_000,
    "fixed_income_wm": lambda b: np.nan_to_num(b["days_to_next_maturity"], nan=9e9) <= 30,
    "structured_deposit": lambda b: b["n_banks"] >= 3,
    "insurance_protection": lambda b: b["payroll_customer"],
    "installment_plan": lambda b: (b["mortgage_balance"] > 0) | (b["car_loan_balance"] > 0),
    "credit_card": lambda b: (b["age"] <= 35) & np.isin(b["occupation_class"],
                                                          ["professional", "salaried"]),
    "loan_refinance": lambda b: np.nan_to_num(b["loans_other_banks"]) >= 2,
    "pension_savings": lambda b: b["age"] >= 50,
    "equity_fund": lambda b: np.isin(b["risk_profile"], ["C4", "C5"]) & (b["fund_balance"] > 0),
}


@pytest.mark.parametrize("product", PRODUCTS)
def test_each_product_follows_its_rule(book: dict[str, np.ndarray], product: str) -> None:
    mask = _RULES[product](book)
    bought = book[f"bought_{product}"]
    assert bought[mask].mean() > 1.8 * bought[~mask].mean()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_read_round_trip(tmp_path: Path, suffix: str) -> None:
    book = generate_book(1_500, 3)
    path = tmp_path / f"book{suffix}"
    write_book(book, path)
    back = read_book(path)
    assert list(back) == list(book)
    for k, v in book.items():
        got = back[k]
        if v.dtype == object:
            assert got.dtype == object and got.tolist() == v.tolist(), k
        elif v.dtype == bool:
            assert got.dtype == bool and np.array_equal(got, v), k
        else:
            assert got.dtype == np.float64, k
            np.testing.assert_array_equal(got, v.astype(np.float64), err_msg=k)


def test_write_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        write_book(generate_book(10, 1), tmp_path / "book.xlsx")
