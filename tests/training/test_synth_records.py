"""The synthetic book's records: disclosed wallet wealth, offers and their uplift, loans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.training import synth, synth_outcomes
from app.training.synth import (
    HOLDING_FLAGS,
    NO_OFFER,
    OFFER_COLUMN,
    PRODUCTS,
    WALLET_TIERS,
    WEALTH_COLUMN,
    generate_book,
    read_book,
    write_book,
)

N = 50_000


@pytest.fixture(scope="module")
def book() -> dict[str, np.ndarray]:
    return generate_book(N, seed=23)


def test_wallet_wealth_is_the_true_figure_where_known(book: dict[str, np.ndarray]) -> None:
    wealth = book[WEALTH_COLUMN]
    assert wealth.dtype == np.float64
    known = ~np.isnan(wealth)
    assert np.all(wealth[known] >= book["aum_total"][known])
    expected = np.maximum(book["true_wealth"], book["aum_total"])
    np.testing.assert_array_equal(wealth[known], expected[known])
    # the true figure differs from the booked AUM for multi-bank customers
    assert np.mean(wealth[known] > book["aum_total"][known] * 1.5) > 0.2


def test_known_share_is_realistic_and_leans_to_the_wealthy(book: dict[str, np.ndarray]) -> None:
    known = ~np.isnan(book[WEALTH_COLUMN])
    assert 0.30 <= known.mean() <= 0.42
    by_tier = [known[book["wallet_tier"] == t].mean() for t in WALLET_TIERS[:3]]
    assert by_tier[0] < by_tier[1] < by_tier[2]
    assert by_tier[0] > 0.2  # mass customers still disclose: rows of every tier to learn from
    borrower = ((book["mortgage_balance"] > 0) | (book["car_loan_balance"] > 0)
                | (book["consumer_loan_balance"] > 0))
    assert known[borrower].mean() > known[~borrower].mean() + 0.2  # credit applications


def test_mortgage_size_does_not_move_wallet_wealth(book: dict[str, np.ndarray]) -> None:
    """Given income and AUM, the mortgage says nothing more about wealth (it is not wealth)."""
    rows = (book["mortgage_balance"] > 0) & book["payroll_customer"]
    assert rows.sum() > 2_000
    log = {k: np.log(book[k][rows] + 1) for k in ("true_wealth", "mortgage_balance",
                                                   "monthly_salary", "aum_total")}
    x = np.column_stack([np.ones(rows.sum()), log["mortgage_balance"], log["monthly_salary"],
                         log["aum_total"]])
    coef = np.linalg.lstsq(x, log["true_wealth"], rcond=None)[0]
    assert abs(coef[1]) < 0.03, coef  # log-wealth per log-mortgage, income and AUM held
    assert coef[2] > 0.3  # wealth still shows through income
    # and mortgages correlate with wealth only through income
    raw = np.corrcoef(log["mortgage_balance"], log["true_wealth"])[0, 1]
    assert raw > 0.3


def test_offers_are_one_catalogue_product_or_none(book: dict[str, np.ndarray]) -> None:
    offered = book[OFFER_COLUMN]
    assert offered.dtype == object and NO_OFFER == ""
    assert set(offered) <= {NO_OFFER, *PRODUCTS}
    assert 0.35 <= np.mean(offered != NO_OFFER) <= 0.45
    for product in PRODUCTS:
        got = offered == product
        assert got.mean() > 0.01, product
        if (flag := HOLDING_FLAGS.get(product)) is not None:
            assert not np.any(got & book[flag]), product  # no offers of a product held
    risk_rated = np.isin(offered, ["sip_fund", "equity_fund", "money_market_fund"])
    assert all(r is not None for r in book["risk_profile"][risk_rated])
    # loosely targeted: the campaign rule makes an offer of the product more likely
    pension = offered == "pension_savings"
    assert pension[book["age"] >= 50].mean() > 2 * pension[book["age"] < 50].mean()


def test_offers_raise_purchases_of_the_offered_product(book: dict[str, np.ndarray]) -> None:
    offered = book[OFFER_COLUMN]
    for product in PRODUCTS:
        bought, got = book[f"bought_{product}"], offered == product
        assert bought[got].mean() > 2 * bought[~got].mean(), product


def test_uplift_is_causal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same customers and draws without the uplift: only offered customers buy less."""
    with_offers = generate_book(N, seed=29)
    monkeypatch.setattr(synth_outcomes, "OFFER_UPLIFT", dict.fromkeys(PRODUCTS, 0.0))
    without = generate_book(N, seed=29)
    np.testing.assert_array_equal(with_offers[OFFER_COLUMN], without[OFFER_COLUMN])
    for product in PRODUCTS:
        name = f"bought_{product}"
        got = with_offers[OFFER_COLUMN] == product
        assert np.all(with_offers[name] >= without[name]), product
        assert np.array_equal(with_offers[name][~got], without[name][~got]), product
        assert with_offers[name][got].mean() > 2 * without[name][got].mean(), product


def test_records_deterministic_per_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "CHUNK", 700)
    a, b = generate_book(3_000, 8), generate_book(3_000, 8, progress=True)
    c = generate_book(3_000, 9)
    np.testing.assert_array_equal(a[WEALTH_COLUMN], b[WEALTH_COLUMN])
    assert a[OFFER_COLUMN].tolist() == b[OFFER_COLUMN].tolist()
    assert a[OFFER_COLUMN].tolist() != c[OFFER_COLUMN].tolist()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_no_offer_and_unknown_wealth_round_trip(tmp_path: Path, suffix: str) -> None:
    book = generate_book(800, 4)
    path = tmp_path / f"book{suffix}"
    write_book(book, path)
    back = read_book(path)
    assert back[OFFER_COLUMN].tolist() == book[OFFER_COLUMN].tolist()
    assert NO_OFFER in back[OFFER_COLUMN].tolist()
    assert None in back["risk_profile"].tolist()  # nulls stay nulls next to empty strings
    np.testing.assert_array_equal(back[WEALTH_COLUMN], book[WEALTH_COLUMN])
    assert np.isnan(back[WEALTH_COLUMN]).any()
