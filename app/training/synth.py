"""Synthetic bank book: customers, features, true wallet tier, churn, offers and purchases.

Vectorised numpy, deterministic per seed: rows are made in fixed chunks of ``CHUNK`` rows,
each seeded from ``(seed, chunk index)``, so the result never depends on ``progress``.
Causal rules (docs/synthetic-book.md says the same at more length):

1. Age (18-95) and occupation (by age band) drive a latent lognormal ``true_wealth`` (total
   investable financial wealth across all banks; peaks around 55; business owners,
   professionals high). Loans are liabilities and never part of it.
2. ``wallet_tier`` is ``true_wealth`` cut at TIER_THRESHOLDS. Wealth is spread over
   ``n_banks`` = 1 + Binomial(3, p) banks, p = 0.22 for mass and 0.58-0.72 above, so mid/high-
   end customers average about 2.8 banks. This bank's share is Beta(2, 2(n_banks-1)) (1 when
   n_banks = 1): it sees about a third of a mid/high-end customer's wealth.
3. ``aum_total`` = share x true_wealth, split into current / term deposit / wealth product /
   fund / insurance parts that add up to it (a part is non-zero only for products held).
4. Income (monthly salary, shown for payroll customers only) rises with wealth. Loans follow
   income and age, as a lender underwrites them: a mortgage is about 5 x annual income, a
   car loan about 0.8 x + ~30k; given income, loan sizes carry no further news about wealth.
   ``loans_other_banks`` grows with n_banks. Card limit and spend scale with wealth.
5. Young customers use the mobile app, old ones the branch; logins follow digital use. Risk
   profile C1-C5 falls with age, rises with wealth; ~18% never assessed, about a quarter of
   assessments older than 365 days (expired). Funds need an assessment.
6. A latent ``drift`` (disengagement) lowers ``balance_trend_90d`` and raises outflows to
   other banks and their trend, complaints, dormancy and days since the last transaction.
   ``churn_90d`` (a large loss of AUM or dormancy in the next 90 days, not closure) is drawn
   through a logistic link from those observed features plus few products held, a long time
   since the last contact and short tenure (~10%).
7. ``wallet_wealth`` (WEALTH_COLUMN) is the true wealth (never below aum_total) for the ~35%
   of customers whose wealth reached the bank's records (credit application, risk
   questionnaire, RM wealth review: more often for the wealthy), NaN elsewhere.
8. ``offered_product`` (OFFER_COLUMN): ~40% of customers got one offer in the window, a
   product not held, loosely targeted by a campaign rule on observed features; NO_OFFER ("")
   otherwise.
9. Each ``bought_<product>`` has its own logistic rule (app/training/synth_outcomes.py): sip
   <- payroll, age 23-45; money market <- high current balance and share; fixed income <-
   C1-C2 and maturity within 30/90 days; structured deposit <- n_banks, wealth elsewhere;
   insurance <- salaried; installment <- high-end, card spend, mortgage / car loan; credit
   card <- young office workers; refinance <- loans at other banks; pension <- 50+; equity
   fund <- valid C4-C5 with funds. A product already held (HOLDING_FLAGS) is bought at 1/100
   of the odds; an offer of the product adds OFFER_UPLIFT (1.0-1.6) to the log-odds.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.features.contract import DEFAULT_FEATURES, OCCUPATIONS, RISK_PROFILES
from app.training.synth_outcomes import NO_OFFER as NO_OFFER  # re-exported for readers
from app.training.synth_outcomes import (
    behaviour,
    churn_outcome,
    disclosed_wealth,
    offers,
    product_outcomes,
    sigmoid,
)

PRODUCTS: tuple[str, ...] = (
    "installment_plan", "fixed_income_wm", "money_market_fund", "sip_fund",
    "structured_deposit", "insurance_protection", "credit_card", "loan_refinance",
    "pension_savings", "equity_fund",
)
WALLET_TIERS = ("mass", "affluent", "hnw", "private")
TIER_THRESHOLDS = (0.0, 100_000.0, 1_000_000.0, 6_000_000.0)  # min AUM/wealth (CNY) per tier
# The has_* flag that marks each product as already held (products absent can be re-bought).
HOLDING_FLAGS: dict[str, str] = {
    "installment_plan": "has_installment", "money_market_fund": "has_money_market",
    "sip_fund": "has_sip", "structured_deposit": "has_structured_deposit",
    "insurance_protection": "has_insurance", "credit_card": "has_credit_card",
    "pension_savings": "has_pension_product",
}
CHUNK = 100_000
# Ground truth a bank never sees (true_wealth, n_banks, wallet_tier) and the churn label.
TRUTH_COLUMNS = ("true_wealth", "n_banks", "wallet_tier", "churn_90d")
WEALTH_COLUMN = "wallet_wealth"  # total investable wealth where disclosed, NaN elsewhere
OFFER_COLUMN = "offered_product"  # product id offered in the window, NO_OFFER when none
RECORD_COLUMNS = (WEALTH_COLUMN, OFFER_COLUMN)  # what the bank recorded besides features
_STRING_COLUMNS = {"customer_id", "wallet_tier", OFFER_COLUMN} | {
    f.name for f in DEFAULT_FEATURES if f.kind == "category"}
_BOOL_COLUMNS = {f.name for f in DEFAULT_FEATURES if f.kind == "boolean"}

_OCC = {name: i for i, name in enumerate(OCCUPATIONS)}
# occupation probabilities per age band (<25, 25-59, 60+), in OCCUPATIONS order
_OCC_P = np.array([
    [0.35, 0.04, 0.08, 0.04, 0.01, 0.00, 0.35, 0.08, 0.05],
    [0.42, 0.10, 0.15, 0.12, 0.07, 0.01, 0.00, 0.05, 0.08],
    [0.08, 0.02, 0.04, 0.04, 0.04, 0.75, 0.00, 0.01, 0.02],
])
_OCC_WEALTH = np.array([0.0, 0.2, 0.7, 0.5, 1.4, 0.3, -1.2, -1.0, -0.1])
_OCC_PAYROLL = np.array([0.65, 0.70, 0.45, 0.05, 0.05, 0.02, 0.02, 0.0, 0.10])
_BANK_P = np.array([0.22, 0.58, 0.66, 0.72])  # per wallet tier: n_banks = 1 + Binomial(3, p)


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category index per row from row-wise probabilities (n, k)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


def _labels(cats: tuple[str, ...], idx: np.ndarray, missing: np.ndarray) -> np.ndarray:
    out = np.array(cats, dtype=object)[idx]
    out[missing] = None
    return out


def _people(rng: np.random.Generator, n: int) -> tuple[dict[str, np.ndarray], dict]:
    """Who the customers are, their wealth, banks, loans, cards and holdings."""
    c: dict[str, np.ndarray] = {}
    age = np.minimum(np.floor(18 + rng.gamma(4.5, 6.0, n)), 95.0)
    band = (age >= 25).astype(int) + (age >= 60)
    occ = _pick(rng, _OCC_P[band])
    age_eff = 1.2 * np.exp(-(((age - 55) / 18) ** 2)) - 0.2
    logw = 10.25 + age_eff + _OCC_WEALTH[occ] + 1.65 * rng.standard_normal(n)
    wealth = np.round(np.minimum(np.exp(logw), 5e9), 2)
    zw = (np.log(wealth + 1) - 11.0) / 1.4
    tier = np.searchsorted(np.array(TIER_THRESHOLDS), wealth, side="right") - 1
    n_banks = 1 + rng.binomial(3, _BANK_P[tier])
    share = np.where(n_banks == 1, 1.0, rng.beta(2.0, 2.0 * np.maximum(n_banks - 1, 1)))
    aum = wealth * share
    young = (age >= 22) & (age <= 45)
    office = np.isin(occ, [_OCC["salaried"], _OCC["civil_servant"], _OCC["professional"]])
    student = occ == _OCC["student"]

    payroll = rng.random(n) < _OCC_PAYROLL[occ]
    salary = np.clip(np.exp(9.0 + 0.35 * (np.log(wealth + 1) - 11) + 0.35 * rng.standard_normal(n)),
                     2_000, 2e6)
    tenure = np.minimum(np.floor(rng.exponential(90, n)), (age - 18) * 12)

    assessed = rng.random(n) < sigmoid(1.5 + 0.5 * zw + 0.5 * payroll)
    r = -0.035 * (age - 45) + 0.35 * zw + 0.5 * np.isin(occ, [2, 4]) + rng.standard_normal(n)
    risk = np.searchsorted(np.array([-1.3, -0.4, 0.5, 1.3]), r)  # 0..4 = C1..C5
    risk_age = np.where(assessed, np.minimum(np.floor(rng.exponential(270, n)), tenure * 30 + 29),
                        np.nan)

    def flag(logit: np.ndarray) -> np.ndarray:
        return rng.random(n) < sigmoid(logit)

    card = flag(-0.6 + 0.9 * young + 0.6 * office + 0.4 * zw - 1.2 * student - 1.0 * (age >= 65))
    sip = assessed & flag(-3.4 + 1.5 * payroll + 0.7 * young + 0.3 * zw)
    liquid = rng.random(n) < 0.2  # latent liquidity seekers
    mm = assessed & flag(-2.8 + 0.4 * zw + 0.8 * liquid)
    other_fund = assessed & flag(-2.6 + 0.5 * zw + 0.5 * (risk >= 2) + 0.5 * (risk >= 3))
    insurance = flag(-2.3 + 0.4 * zw + 0.02 * (age - 45) + 0.5 * payroll)
    sd = flag(-3.9 + 0.8 * zw)
    installment = card & flag(-3.0 + 0.6 * zw)
    pension = (age >= 35) & flag(-3.6 + 0.06 * (age - 40))
    term = flag(-0.8 + 0.3 * zw + 0.02 * (age - 45))
    wmp = flag(-2.0 + 0.7 * zw - 0.6 * ~assessed)

    # AUM parts: weights only for parts held, current always; they add up to aum_total.
    w = np.stack([
        rng.gamma(1.5, 1.0, n) * (1 + 2 * liquid),
        rng.gamma(2.0, 1.0, n) * 2.0 * (term | sd),
        rng.gamma(2.0, 1.0, n) * 2.0 * wmp,
        rng.gamma(1.5, 1.0, n) * (0.8 + 0.6 * (risk >= 3)) * (sip | mm | other_fund),
        rng.gamma(1.5, 1.0, n) * 0.6 * (insurance | pension),
    ])
    parts = np.round(aum * w / w.sum(axis=0), 2)
    for name, part in zip(("current_deposit_balance", "term_deposit_balance",
                           "wealth_product_balance", "fund_balance", "insurance_value"), parts,
                          strict=True):
        c[name] = part
    c["aum_total"] = parts.sum(axis=0)
    c["insurance_value"] = np.where(rng.random(n) < 0.03, np.nan, c["insurance_value"])  # feed gap

    # Loans are liabilities, not investable wealth: their take-up and size follow income and
    # age (what a lender underwrites on), so given income they say nothing more about wealth.
    annual = 12 * salary
    zi = (np.log(salary) - 9.0) / 0.7
    mortgage = flag(-2.2 + 0.5 * zi + 1.0 * ((age >= 28) & (age <= 55)) - 1.5 * (age > 65)
                    - 1.5 * student)
    car = flag(-3.0 + 0.4 * zi + 0.5 * ((age >= 25) & (age <= 50)))
    consumer = flag(-2.4 - 0.3 * zi + 0.6 * (age < 40))
    c["mortgage_balance"] = np.round(mortgage * np.minimum(
        annual * 5.0 * rng.lognormal(0, 0.45, n), 3e7), 2)
    c["car_loan_balance"] = np.round(car * np.minimum(
        annual * 0.8 * rng.lognormal(0, 0.4, n) + 30_000 * rng.lognormal(0, 0.3, n), 3e6), 2)
    c["consumer_loan_balance"] = np.round(consumer * (30_000 * rng.lognormal(0, 0.7, n)
                                                      + 0.1 * annual), 2)
    loans_elsewhere = np.minimum(rng.poisson(0.1 + 0.35 * (n_banks - 1) + 0.15 * np.maximum(zw, 0)
                                             + 0.3 * mortgage), 50).astype(float)
    c["loans_other_banks"] = np.where(rng.random(n) < 0.04, np.nan, loans_elsewhere)  # no hit

    limit = np.clip(1000 * np.round(np.exp(10.3 + 0.45 * (np.log(wealth + 1) - 11)
                                           + 0.3 * rng.standard_normal(n)) / 1000), 5_000, 2e6)
    active_card = card & (rng.random(n) < 0.85)
    spend = np.round(active_card * limit * np.minimum(rng.lognormal(np.log(0.35), 0.6, n), 3), 2)
    c["credit_card_limit"] = card * limit
    c["card_spend_90d"] = spend
    c["card_txn_count_90d"] = np.where(spend > 0, 1 + rng.poisson(spend / 400), 0).astype(float)

    c["age"], c["tenure_months"] = age, tenure
    c["occupation_class"] = _labels(OCCUPATIONS, occ, rng.random(n) < 0.03)
    c["payroll_customer"] = payroll
    c["monthly_salary"] = np.where(payroll, np.round(salary, 2), np.nan)
    c["vip_card"] = rng.random(n) < sigmoid(3.0 * (np.log(c["aum_total"] + 1) - np.log(300_000)))
    c["risk_profile"] = _labels(RISK_PROFILES, risk, ~assessed)
    c["risk_assessment_age_days"] = risk_age
    maturing = (c["term_deposit_balance"] > 0) | (c["wealth_product_balance"] > 0)
    mat = np.where(rng.random(n) < 0.85, rng.integers(0, 366, n), rng.integers(366, 1096, n))
    c["days_to_next_maturity"] = np.where(maturing, mat, np.nan)
    for name, held in (("has_credit_card", card), ("has_sip", sip), ("has_money_market", mm),
                       ("has_insurance", insurance), ("has_structured_deposit", sd),
                       ("has_installment", installment), ("has_pension_product", pension)):
        c[name] = held
    c["products_held"] = (1 + term + wmp + other_fund + insurance + pension + card + sip + mm + sd
                          + installment + mortgage + car + consumer).astype(float)
    latent = {"wealth": wealth, "n_banks": n_banks, "tier": tier, "zw": zw, "liquid": liquid,
              "risk": risk, "assessed": assessed, "loans_elsewhere": loans_elsewhere,
              "office": office, "borrower": mortgage | car | consumer}
    return c, latent


def _chunk(seed: int, index: int, start: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    cols, latent = _people(rng, n)
    cols.update(behaviour(rng, cols, latent))
    numbers = np.arange(start + 1, start + n + 1).astype(str)
    ids = np.strings.add("C", np.strings.zfill(numbers, 9)) if n else numbers
    out: dict[str, np.ndarray] = {"customer_id": ids.astype(object)}
    for f in DEFAULT_FEATURES:
        v = cols[f.name]
        out[f.name] = v if v.dtype in (object, bool) else v.astype(np.float64)
    out["true_wealth"] = latent["wealth"]
    out["n_banks"] = latent["n_banks"].astype(np.int64)
    out["wallet_tier"] = np.array(WALLET_TIERS, dtype=object)[latent["tier"]]
    out["churn_90d"] = churn_outcome(rng, out)
    out[WEALTH_COLUMN] = disclosed_wealth(rng, out, latent)
    out[OFFER_COLUMN] = offers(rng, out, PRODUCTS, HOLDING_FLAGS)
    bought = product_outcomes(rng, out, latent, HOLDING_FLAGS)
    for product in PRODUCTS:
        out[f"bought_{product}"] = bought[product]
    return out


def generate_book(n: int, seed: int, *, progress: bool = False) -> dict[str, np.ndarray]:
    """A synthetic book of `n` customers: features, ground truth and outcomes, by column."""
    starts = range(0, n, CHUNK)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="synthetic book", unit="chunk")
    parts = [_chunk(seed, i // CHUNK, i, min(CHUNK, n - i)) for i in starts]
    if not parts:
        parts = [_chunk(seed, 0, 0, 0)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def write_book(book: dict[str, np.ndarray], path: Path) -> None:
    """Write a book to .parquet or .csv (by suffix); missing values become nulls."""
    path = Path(path)
    arrays = {k: pa.array(v, type=pa.string() if v.dtype == object else None, from_pandas=True)
              for k, v in book.items()}
    table = pa.table(arrays)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        raise ValueError(f"unsupported book format {path.suffix!r} (use .parquet or .csv)")


def read_book(path: Path) -> dict[str, np.ndarray]:
    """Read a book written by write_book: numbers float64, strings object, booleans bool."""
    path = Path(path)
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    elif path.suffix == ".csv":
        with path.open(encoding="utf-8") as fh:
            names = next(csv.reader(fh))
        types = {k: pa.string() if k in _STRING_COLUMNS else
                 pa.bool_() if k in _BOOL_COLUMNS else pa.float64() for k in names}
        # Nulls are written as empty unquoted cells, empty strings as "" (kept as "").
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False))
    else:
        raise ValueError(f"unsupported book format {path.suffix!r} (use .parquet or .csv)")
    out: dict[str, np.ndarray] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_boolean(col.type):
            out[name] = col.to_numpy(zero_copy_only=False).astype(bool)
        elif name in _STRING_COLUMNS or pa.types.is_string(col.type):
            out[name] = np.array(col.to_pylist(), dtype=object)
        else:
            out[name] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return out
