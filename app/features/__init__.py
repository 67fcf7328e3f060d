"""Customer features: the contract, validation, and the float rows models read."""

from app.features.schema import FeatureSchema
from app.features.spec import FeatureSpec

__all__ = ["FeatureSchema", "FeatureSpec"]
