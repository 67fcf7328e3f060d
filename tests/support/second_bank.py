"""A second bank's customer table, sharing no column name with the default contract.

Used by the end-to-end test of issue 11: a bank brings its own features (its own names,
units and categories), its own wealth column (known for some customers only), churn label,
product purchases and offer log, and trains every family from this one file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from app.features.contract import DEFAULT_FEATURE_NAMES

PRODUCTS = ("bond_fund", "travel_card", "loan_switch")
SEGMENTS = ("everyday", "premier", "staff")
RISK = ("C1", "C2", "C3", "C4", "C5")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate(n: int = 4000, seed: int = 7) -> dict[str, list[object]]:
    """Columns of the second bank's table (None where a value is missing)."""
    rng = np.random.default_rng(seed)
    years_old = rng.integers(19, 88, n)
    relationship_years = np.minimum(rng.gamma(2.0, 4.0, n), years_old - 18).round(1)
    # Total wealth across all banks (log-normal), and the part held here.
    wealth = np.exp(rng.normal(12.3 + 0.012 * (years_old - 40), 1.25, n))
    share_here = rng.beta(2.0, 3.0, n)
    holdings_here = (wealth * share_here).round(2)
    salary_here = rng.random(n) < 0.45
    premier = holdings_here > 400_000
    segment = np.where(rng.random(n) < 0.03, "staff",
                       np.where(premier, "premier", "everyday"))
    logins_month = rng.poisson(np.where(years_old < 55, 14, 5))
    branch_visits_3m = rng.poisson(np.where(years_old < 55, 1.0, 3.0))
    holdings_change_3m = np.clip(rng.normal(0.01, 0.15, n), -0.95, 3.0).round(4)
    transfers_out_3m = (holdings_here * rng.beta(1.0, 8.0, n)).round(2)
    credit_lines_elsewhere = rng.poisson(0.5, n)
    mortgage_outstanding = np.where(rng.random(n) < 0.3, rng.gamma(2.0, 400_000, n), 0.0).round(2)
    assessed = rng.random(n) < 0.8
    risk_idx = np.clip(np.round(rng.normal(2.0 + (years_old < 50), 1.0, n)), 0, 4).astype(int)
    mifid_class = [RISK[i] if a else None for i, a in zip(risk_idx, assessed, strict=True)]
    mifid_age_days = [int(d) if a else None
                      for d, a in zip(rng.integers(0, 900, n), assessed, strict=True)]
    maturing = rng.random(n) < 0.35
    next_maturity_days = [int(d) if m else None
                          for d, m in zip(rng.integers(0, 365, n), maturing, strict=True)]
    complaints_year = rng.poisson(0.2, n)
    snapshot_month = rng.choice([202501, 202502, 202503, 202504, 202505, 202506], n)

    churn_logit = (-2.0 + 1.2 * holdings_change_3m * -4 + 0.8 * complaints_year
                   + 1.5 * transfers_out_3m / (holdings_here + 1) - 0.05 * logins_month
                   - 0.6 * salary_here + 0.02 * np.abs(years_old - 45))
    left_bank = (rng.random(n) < _sigmoid(churn_logit)).astype(int)
    # Wealth is known for a third of the customers (declared in KYC or a credit application).
    known = rng.random(n) < _sigmoid(-0.9 + 0.6 * premier)
    wealth_declared = [round(float(w), 2) if k else None
                       for w, k in zip(wealth, known, strict=True)]

    offered = rng.choice(["", *PRODUCTS], n, p=[0.55, 0.15, 0.15, 0.15])
    base = {
        "bond_fund": -3.0 + 0.8 * np.log1p(holdings_here) / 10 + 0.9 * (risk_idx >= 1) * assessed,
        "travel_card": -2.5 + 0.04 * logins_month - 0.02 * np.abs(years_old - 35),
        "loan_switch": -4.0 + 2.5 * (credit_lines_elsewhere > 0),
    }
    columns: dict[str, list[object]] = {
        "client_no": [f"B{100000 + i}" for i in range(n)],
        "snapshot_month": snapshot_month.tolist(),
        "years_old": years_old.tolist(),
        "relationship_years": relationship_years.tolist(),
        "segment": segment.tolist(),
        "holdings_here": holdings_here.tolist(),
        "salary_here": salary_here.tolist(),
        "logins_month": logins_month.tolist(),
        "branch_visits_3m": branch_visits_3m.tolist(),
        "holdings_change_3m": holdings_change_3m.tolist(),
        "transfers_out_3m": transfers_out_3m.tolist(),
        "credit_lines_elsewhere": credit_lines_elsewhere.tolist(),
        "mortgage_outstanding": mortgage_outstanding.tolist(),
        "mifid_class": mifid_class,
        "mifid_age_days": mifid_age_days,
        "next_maturity_days": next_maturity_days,
        "complaints_year": complaints_year.tolist(),
        "left_bank": left_bank.tolist(),
        "wealth_declared": wealth_declared,
        "offered": offered.tolist(),
    }
    for product, logit in base.items():
        uplift = np.where(offered == product, 1.2, 0.0)
        columns[product] = (rng.random(n) < _sigmoid(logit + uplift)).astype(int).tolist()
    assert not set(columns) & set(DEFAULT_FEATURE_NAMES)
    return columns


def write_csv(path: Path, n: int = 4000, seed: int = 7, delimiter: str = ",") -> Path:
    """The table as a CSV file (empty cells where a value is missing)."""
    columns = generate(n, seed)
    names = list(columns)
    with path.open("w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(names)
        for row in zip(*(columns[c] for c in names), strict=True):
            w.writerow(["" if v is None else v for v in row])
    return path
