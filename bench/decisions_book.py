"""What the catalogue rules of issue 11 do on a synthetic book (figures in docs/decisions.md).

    PYTHONPATH=$PWD python -m bench.decisions_book [--customers 20000] [--seed 11]

Scores the book with the default models (models/) twice, without a channel or contact
history, top 3: under the default catalogue as it was before issue 11 (no condition on loan
refinancing, no reassessment action, no contact cap) and as it is now. Prints, per
catalogue, the share of customers with loan refinancing in their top 3 although the credit
bureau shows no loan at another bank (loans_other_banks 0, or no bureau hit), and the share
offered the risk reassessment.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.decisions.catalog import Catalog
from app.decisions.prepared import prepare
from app.features.contract import DEFAULT_FEATURES
from app.scoring.context import ScoringContext
from app.scoring.pipeline import CustomerInput, Options, score_rows
from app.training.default_config import CATALOG_JSON, default_catalog
from bench.inprocess import load_context

REFINANCE, REASSESS = "loan_refinance", "reassess_risk_profile"


def catalog_before_issue_11() -> Catalog:
    """The default catalogue without the rules issue 11 added."""
    doc = copy.deepcopy(CATALOG_JSON)
    doc.pop("contact_cap", None)
    doc["actions"] = [a for a in doc["actions"] if a.get("kind") != "service"]
    for a in doc["actions"]:
        a["eligibility"].pop("conditions", None)
    return Catalog.model_validate(doc)


def book_customers(n: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """n synthetic customers as named features (missing ones left out), and the book."""
    from app.features.schema import FeatureSchema
    from app.training.dataset import encode_book
    from app.training.synth import generate_book

    book = generate_book(n, seed)
    schema = FeatureSchema(DEFAULT_FEATURES)
    customers = [{k: v for k, v in schema.decode(row).items() if v is not None}
                 for row in encode_book(book, schema.specs)]
    return customers, book


def measure(ctx: ScoringContext, catalog: Catalog, features: list[dict[str, Any]],
            x: np.ndarray, chunk: int = 2_000) -> dict[str, float]:
    """Shares of the book (0..1) under `catalog`."""
    ctx = copy.copy(ctx)
    ctx.catalog, ctx.prepared_catalog = catalog, prepare(catalog, ctx.roles)
    options = Options(parts=frozenset({"recommendations"}), explain=False)
    n = len(features)
    refi_no_loans = refi_no_hit = refi = reassess = 0
    not_current = 0
    for start in range(0, n, chunk):
        part = features[start:start + chunk]
        customers = [CustomerInput(customer_id=str(start + i), features=f)
                     for i, f in enumerate(part)]
        for f, out in zip(part, score_rows(ctx, x[start:start + chunk], customers, options),
                          strict=True):
            shown = {r["action_id"] for r in out["recommendations"]}
            loans = f.get("loans_other_banks")
            if REFINANCE in shown:
                refi += 1
                refi_no_loans += loans == 0
                refi_no_hit += loans is None
            reassess += REASSESS in shown
            age = f.get("risk_assessment_age_days")
            not_current += (f.get("risk_profile") is None or age is None
                            or age > catalog.assessment_valid_days)
    return {"refinance in top 3": refi / n,
            "refinance in top 3, loans_other_banks 0": refi_no_loans / n,
            "refinance in top 3, no bureau hit": refi_no_hit / n,
            "reassessment offered": reassess / n,
            "assessment missing or expired": not_current / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--models", type=Path, default=Path("models"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ctx = load_context(args.models)
    features, _ = book_customers(args.customers, args.seed)
    x = np.array([ctx.schema.row(f) for f in features])
    print(f"{args.customers} customers (seed {args.seed}), default models, no channel, "
          "no history, top 3")
    for label, catalog in (("before issue 11", catalog_before_issue_11()),
                           ("default catalogue", default_catalog())):
        shares = measure(ctx, catalog, features, x)
        print(f"{label}:")
        for name, share in shares.items():
            print(f"  {name:45s} {share:7.2%}")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
