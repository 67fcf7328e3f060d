"""A table shaped like the well-known public bank-churn dataset ("Churn_Modelling.csv").

No internet here, so the acceptance test of `tierwise train churn` uses this stand-in: the same
columns, types, marginals and churn patterns (10,000 customers, ~20% exited):
RowNumber, CustomerId (8-digit, unique), Surname (~2,900 distinct), CreditScore (350-850),
Geography (France 50% / Germany 25% / Spain 25%), Gender, Age (18-92, right-skewed),
Tenure (0-10), Balance (~36% exactly 0; every German customer holds a balance),
NumOfProducts (1: 51%, 2: 46%, 3: 2.7%, 4: 0.6%), HasCrCard (70%), IsActiveMember (51%),
EstimatedSalary (uniform), Exited.
Churn rises with age up to ~60 then falls, is higher in Germany, for women, for inactive
members (more so when older), for 3-4 products (almost all leave) and lower for 2 products,
higher with a balance; credit score, tenure, card and salary barely matter.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = ("RowNumber", "CustomerId", "Surname", "CreditScore", "Geography", "Gender", "Age",
           "Tenure", "Balance", "NumOfProducts", "HasCrCard", "IsActiveMember",
           "EstimatedSalary", "Exited")
_SYLLABLES = ("ma", "ri", "to", "ke", "lo", "san", "chen", "wu", "be", "ll", "on", "der",
              "ni", "ko", "va", "ro", "pe", "tt", "gu", "li", "ber", "fo", "ha", "mi")


def _surnames(rng: np.random.Generator, n: int) -> list[str]:
    pool = sorted({"".join(rng.choice(_SYLLABLES, rng.integers(2, 4))).capitalize()
                   for _ in range(4000)})[:2900]
    weights = 1.0 / np.arange(1, len(pool) + 1) ** 0.6
    return list(rng.choice(pool, n, p=weights / weights.sum()))


def generate(n: int = 10_000, seed: int = 2026) -> dict[str, list[Any]]:
    """The columns of COLUMNS, as lists (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    geography = rng.choice(["France", "Germany", "Spain"], n, p=[0.50, 0.25, 0.25])
    female = rng.random(n) < 0.454
    age = np.clip(np.round(18 + rng.gamma(4.5, 4.6, n)), 18, 92).astype(int)
    tenure = rng.integers(0, 11, n)
    credit = np.clip(np.round(rng.normal(650, 97, n)), 350, 850).astype(int)
    german = geography == "Germany"
    zero_balance = (rng.random(n) < 0.48) & ~german
    balance = np.where(zero_balance, 0.0, np.round(np.clip(rng.normal(120_000, 30_000, n),
                                                           3_000, 250_000), 2))
    products = rng.choice([1, 2, 3, 4], n, p=[0.508, 0.459, 0.027, 0.006])
    # Customers without a balance more often hold two products (as in the public table).
    products = np.where(zero_balance & (products == 1) & (rng.random(n) < 0.4), 2, products)
    card = (rng.random(n) < 0.705).astype(int)
    active = (rng.random(n) < 0.515).astype(int)
    salary = np.round(rng.uniform(11.58, 199_992.48, n), 2)

    age_effect = 0.11 * (np.minimum(age, 58) - 38) - 0.13 * np.maximum(0, age - 62)
    product_effect = np.select([products == 2, products == 3, products == 4],
                               [-1.6, 2.6, 6.0], 0.0)
    logit = (-1.45 + age_effect + 0.80 * german + 0.50 * female - 0.75 * active
             - 0.035 * np.maximum(0, age - 40) * active + product_effect
             + 0.35 * (balance > 0) - 0.0006 * (credit - 650) - 0.01 * (tenure - 5)
             + rng.normal(0, 0.5, n))
    exited = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    ids = rng.choice(np.arange(15_565_701, 15_815_691), n, replace=False)
    return {
        "RowNumber": list(range(1, n + 1)),
        "CustomerId": ids.tolist(),
        "Surname": _surnames(rng, n),
        "CreditScore": credit.tolist(),
        "Geography": geography.tolist(),
        "Gender": np.where(female, "Female", "Male").tolist(),
        "Age": age.tolist(),
        "Tenure": tenure.tolist(),
        "Balance": balance.tolist(),
        "NumOfProducts": products.tolist(),
        "HasCrCard": card.tolist(),
        "IsActiveMember": active.tolist(),
        "EstimatedSalary": salary.tolist(),
        "Exited": exited.tolist(),
    }


def write_csv(path: Path, columns: dict[str, list[Any]], *, delimiter: str = ",",
              drop: tuple[str, ...] = ()) -> Path:
    """Write the table as CSV (without the `drop` columns)."""
    names = [c for c in columns if c not in drop]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(names)
        w.writerows(zip(*(columns[c] for c in names), strict=True))
    return path


if __name__ == "__main__":  # python -m tests.support.bank_churn OUT.csv
    import sys

    write_csv(Path(sys.argv[1]), generate())
