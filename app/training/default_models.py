"""Build the default bundles in models/: `python -m app.training.default_models --out models`.

A synthetic book of CUSTOMERS customers (seed SEED) trains the tier, churn and products
families; the feature contract comes from app/training/default_contract.py, the catalogue
and policy from app/training/default_config.py. Seeds, thread
count and created_at are fixed, so a rerun on the same library versions writes the same
bytes (the same sha256 per bundle).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.bundles.io import Bundle
from app.training.bundling import config_bundle
from app.training.lgbm import DEFAULT_THREADS

SEED = 20261123
CUSTOMERS = 200_000
CREATED_AT = "2026-11-23T00:00:00+00:00"
CREATED_BY = "make models (app.training.default_models)"


def build(*, customers: int = CUSTOMERS, seed: int = SEED, num_threads: int = DEFAULT_THREADS,
          progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Bundle]:
    """Every default bundle, by family name, built and verified in memory."""
    from app.features.family import ContractRef
    from app.training.contract_input import attach_contract
    from app.training.default_config import default_catalog, default_policy
    from app.training.default_contract import default_contract_bundle
    from app.training.synth import generate_book
    from app.training.tier_command import train_tier_from_book
    from app.training.train import train_churn, train_products

    started = time.perf_counter()
    book = generate_book(customers, seed, progress=progress)
    log(f"synthetic book: {customers} customers, seed {seed}, "
        f"{time.perf_counter() - started:.1f} s")
    source = f"synthetic book (app.training.synth), {customers} customers, seed {seed}"
    common: dict[str, Any] = {"num_threads": num_threads, "progress": progress,
                              "source": source, "created_at": CREATED_AT}
    bundles: dict[str, Bundle] = {"features": default_contract_bundle()}
    # Every model records the contract it was trained against, as `--contract` makes the
    # trainers do for a bank's own file.
    contract = ContractRef(name="default", sha256=bundles["features"].sha256)
    for family, trainer in (("tier", train_tier_from_book), ("churn", train_churn),
                            ("products", train_products)):
        t0 = time.perf_counter()
        bundles[family] = attach_contract(trainer(book, seed, **common), contract)
        log(f"{family}: {bundles[family].manifest.metrics['trees']} trees, "
            f"{time.perf_counter() - t0:.1f} s")
    documents = {"catalog": default_catalog().model_dump(mode="json"),
                 "policy": default_policy().model_dump(mode="json")}
    for family, document in documents.items():
        bundles[family] = config_bundle(family=family, document=document,
                                        label=f"default {family}", created_by=CREATED_BY,
                                        created_at=CREATED_AT)
    return bundles


def main(argv: list[str] | None = None) -> int:
    """Build the default bundles and write them as directories under --out."""
    from app.training.cli_io import check_out, write_bundle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="LightGBM threads (part of what makes the bytes reproducible)")
    parser.add_argument("--archive", action="store_true", help="also write <family>.tar.gz")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    for family in ("features", "tier", "churn", "products", "catalog", "policy"):
        check_out(args.out / family)
    started = time.perf_counter()
    bundles = build(customers=args.customers, seed=args.seed, num_threads=args.threads,
                    progress=not args.no_progress,
                    log=lambda line: print(line, file=sys.stderr, flush=True))
    for family, bundle in bundles.items():
        write_bundle(bundle, args.out / family, archive=args.archive)
    print(f"default bundles written to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
