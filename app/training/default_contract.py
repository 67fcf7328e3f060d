"""The default feature contract: DEFAULT_FEATURES with the default reason texts, as a bundle.

`python -m app.training.default_contract --out models/features` writes it (also part of
`make models`). created_at is fixed, so the bytes, and the sha256, are reproducible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.bundles.io import Bundle, build_bundle, write_dir
from app.features.contract import DEFAULT_FEATURES
from app.features.family import (
    CONTRACT_FILE,
    ContractFeature,
    FeatureContract,
    ReasonText,
)
from app.scoring.loader import load_family
from app.training.reasons import default_offer_texts, default_reason_codes

CREATED_AT = "2026-11-23T00:00:00+00:00"
CREATED_BY = "make models (app.training.default_contract)"
DESCRIPTION = ("The default book's customer features: who the customer is, assets and "
               "their parts at this bank, flows, loans, cards, activity, products held, "
               "suitability and contact history.")


def default_contract() -> FeatureContract:
    """DEFAULT_FEATURES in order, each with its default churn reason texts and the text of
    its value as a reason for an offer."""
    codes = default_reason_codes()
    offers = default_offer_texts()
    features = []
    for spec in DEFAULT_FEATURES:
        code = codes.get(spec.name)
        offer = offers.get(spec.name)
        reason = (ReasonText(**code.model_dump(), offer=offer) if code is not None else None)
        features.append(ContractFeature(**spec.model_dump(), reason=reason))
    return FeatureContract(name="default", description=DESCRIPTION, currency="CNY",
                           features=tuple(features))


def contract_bundle(contract: FeatureContract, *, label: str = "",
                    created_by: str = "tierwise", created_at: str = CREATED_AT) -> Bundle:
    """A verified features bundle holding `contract` as features.json."""
    bundle = build_bundle({"family": "features", "label": label, "created_by": created_by,
                           "created_at": created_at}, {CONTRACT_FILE: contract.to_json()})
    load_family(bundle)
    return bundle


def default_contract_bundle() -> Bundle:
    """The default contract's bundle, byte for byte what models/features holds."""
    return contract_bundle(default_contract(), label="default features",
                           created_by=CREATED_BY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/features"))
    args = parser.parse_args(argv)
    bundle = default_contract_bundle()
    write_dir(bundle, args.out)
    print(f"default contract written to {args.out} (sha256 {bundle.sha256})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
