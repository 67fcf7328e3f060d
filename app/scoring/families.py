"""Model families as loaded from bundles: their tree models, calibration and reason codes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.bundles.manifest import (
    Calibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    ReasonCode,
    WealthModel,
)
from app.bundles.reference import Reference
from app.engine.trees import TreeModel
from app.features.spec import FeatureSpec


def calibrate(
    calibrator: Calibrator | None, raw: np.ndarray, probability: np.ndarray
) -> np.ndarray:
    """The calibrated probability: Platt on the raw score, isotonic on the model probability."""
    if calibrator is None:
        return probability
    if isinstance(calibrator, PlattCalibrator):
        return 1.0 / (1.0 + np.exp(calibrator.a * raw + calibrator.b))
    assert isinstance(calibrator, IsotonicCalibrator)
    return np.interp(probability, calibrator.x, calibrator.y)


@dataclass(frozen=True)
class TierFamily:
    """A multiclass model over fixed `classes` (legacy), or a wallet-wealth regression
    (`wealth`, no classes): its tiers come from the live policy's thresholds."""

    model: TreeModel
    classes: tuple[str, ...]
    features: tuple[FeatureSpec, ...]
    wealth: WealthModel | None = None
    reference: Reference | None = None  # the training histograms monitoring compares with


@dataclass(frozen=True)
class ChurnFamily:
    model: TreeModel
    calibrator: Calibrator | None
    reason_codes: dict[str, ReasonCode]
    features: tuple[FeatureSpec, ...]
    reference: Reference | None = None


@dataclass(frozen=True)
class ProductFamily:
    models: dict[str, TreeModel]
    features: tuple[FeatureSpec, ...]
    reference: Reference | None = None
