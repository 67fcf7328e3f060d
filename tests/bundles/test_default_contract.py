"""The default feature contract: DEFAULT_FEATURES with reason texts, reproducible bytes, and
the features bundle shape (no models, no contract reference)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.bundles.io import build_bundle, read_dir
from app.bundles.manifest import FAMILIES, Manifest
from app.config import PROJECT_ROOT
from app.errors import BundleRejected
from app.features.contract import DEFAULT_FEATURES
from app.features.family import CONTRACT_FILE, FeatureContract
from app.scoring.loader import load_family
from app.training.default_contract import default_contract, default_contract_bundle


def test_the_default_contract_is_the_default_features_with_their_reasons() -> None:
    contract = default_contract()
    assert contract.specs() == DEFAULT_FEATURES
    assert all(f.reason is not None for f in contract.features)
    assert contract.roles.aum == "aum_total"


def test_models_features_holds_the_default_contract_byte_for_byte() -> None:
    on_disk = read_dir(PROJECT_ROOT / "models" / "features")
    built = default_contract_bundle()
    assert (on_disk.manifest_bytes, on_disk.files) == (built.manifest_bytes, built.files)
    assert default_contract_bundle().sha256 == built.sha256  # reproducible
    assert load_family(on_disk) == default_contract()


def test_features_comes_first() -> None:
    assert FAMILIES[0] == "features" and len(FAMILIES) == 6


def test_a_features_bundle_holds_no_models_and_names_no_contract() -> None:
    fields = json.loads(default_contract_bundle().manifest_bytes)
    with pytest.raises(ValidationError, match="no models and no contract"):
        Manifest.model_validate({**fields, "contract": {"name": "x", "sha256": "0" * 64}})
    with pytest.raises(ValidationError, match=r"needs features\.json"):
        Manifest.model_validate({**fields, "files": {}})


@pytest.mark.parametrize(("document", "field"), [
    ({"features": []}, "features.json:features"),
    ({"features": [{"name": "a", "kind": "number"}], "roles": {"aum": "b"}},
     "features.json:"),
    ({"features": [{"name": "a", "kind": "number", "colour": 1}]},
     "features.json:features.0.colour"),
])
def test_a_bad_contract_is_refused_naming_the_field(document: dict, field: str) -> None:
    bundle = build_bundle({"family": "features"},
                          {CONTRACT_FILE: json.dumps(document).encode()})
    with pytest.raises(BundleRejected) as err:
        load_family(bundle)
    assert err.value.details[0].field.startswith(field)


def test_a_contract_is_a_feature_contract() -> None:
    assert isinstance(load_family(default_contract_bundle()), FeatureContract)
