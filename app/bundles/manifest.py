"""The manifest of a model bundle: what it is, what it reads, what it must reproduce."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.bundles.reference import Reference
from app.features.family import CONTRACT_FILE, ContractRef
from app.features.spec import FeatureSpec

FORMAT: Literal["tierwise-bundle/1"] = "tierwise-bundle/1"
Family = Literal["features", "tier", "churn", "products", "catalog", "policy"]
# The feature contract first: every other family is checked against it.
FAMILIES: tuple[str, ...] = ("features", "tier", "churn", "products", "catalog", "policy")
MODEL_FAMILIES: tuple[str, ...] = ("tier", "churn", "products")
CONFIG_FILES = {"features": CONTRACT_FILE, "catalog": "catalog.json", "policy": "policy.json"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlattCalibrator(_Strict):
    """p = 1 / (1 + exp(a * raw + b)), fitted on held-out raw scores."""

    method: Literal["platt"] = "platt"
    a: float
    b: float


class IsotonicCalibrator(_Strict):
    """Piecewise-linear map from the model's probability, fitted on held-out rows."""

    method: Literal["isotonic"] = "isotonic"
    x: tuple[float, ...] = Field(min_length=2)
    y: tuple[float, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _shape(self) -> IsotonicCalibrator:
        if len(self.x) != len(self.y):
            raise ValueError("isotonic x and y must have the same length")
        if list(self.x) != sorted(self.x) or list(self.y) != sorted(self.y):
            raise ValueError("isotonic x and y must be non-decreasing")
        if not all(0.0 <= v <= 1.0 for v in self.y):
            raise ValueError("isotonic y must lie in [0, 1]")
        return self


Calibrator = PlattCalibrator | IsotonicCalibrator


class ReasonCode(_Strict):
    """How a feature's contribution to churn reads to an RM, by direction."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    up: str = Field(description="Text when the feature raises risk; may use {value}.")
    down: str = Field(description="Text when the feature lowers risk; may use {value}.")
    format: Literal["number", "percent", "money", "integer", "text"] = "number"


class WealthModel(_Strict):
    """A tier model that predicts wallet wealth: the model gives mu = E[log1p(W)], and
    log1p(W) - mu follows the out-of-fold residual distribution: a piecewise-linear CDF
    through (residual_quantiles[i], probabilities[i]), its end segments continued to 0 and 1.
    The tier is read from the live policy's thresholds at scoring time."""

    transform: Literal["log1p"] = "log1p"
    residual_quantiles: tuple[float, ...] = Field(
        min_length=2, max_length=10_000,
        description="Residuals log1p(W) - mu at `probabilities`, strictly increasing.")
    probabilities: tuple[float, ...] = Field(
        min_length=2, max_length=10_000,
        description="Cumulative probabilities in [0, 1], strictly increasing.")

    @field_validator("residual_quantiles", "probabilities")
    @classmethod
    def _increasing(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if bad := [i for i, x in enumerate(v) if not math.isfinite(x)]:
            raise ValueError(f"value {bad[0]} is not a finite number")
        if bad := [i for i in range(1, len(v)) if not v[i] > v[i - 1]]:
            raise ValueError(f"must increase strictly: value {bad[0]} ({v[bad[0]]!r}) is not "
                             f"above value {bad[0] - 1} ({v[bad[0] - 1]!r})")
        return v

    @field_validator("probabilities")
    @classmethod
    def _unit(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if v[0] < 0.0 or v[-1] > 1.0:
            raise ValueError("probabilities must lie in [0, 1]")
        return v

    @model_validator(mode="after")
    def _lengths(self) -> WealthModel:
        if len(self.residual_quantiles) != len(self.probabilities):
            raise ValueError(f"residual_quantiles has {len(self.residual_quantiles)} values, "
                             f"probabilities {len(self.probabilities)}: one quantile per "
                             "probability")
        return self


class ReferenceRow(_Strict):
    """A customer and the outputs the bundle must reproduce for it."""

    features: dict[str, Any]
    expected: dict[str, float | list[float]]


class Manifest(_Strict):
    """manifest.json of a bundle."""

    format: Literal["tierwise-bundle/1"] = FORMAT
    family: Family
    label: str = Field(default="", max_length=200, description="Free text, e.g. the training run.")
    created_at: str = ""
    created_by: str = ""
    files: dict[str, str] = Field(description="File name → sha256 (hex) of every other file.")
    features: tuple[FeatureSpec, ...] = ()
    models: dict[str, str] = Field(
        default_factory=dict, description="Model name → LightGBM text file in this bundle."
    )
    classes: tuple[str, ...] = ()
    wealth: WealthModel | None = Field(
        default=None, description="Tier only: a wallet-wealth regression instead of classes.")
    calibrator: Calibrator | None = Field(default=None, discriminator="method")
    reason_codes: dict[str, ReasonCode] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training_data: dict[str, Any] = Field(default_factory=dict)
    reference_rows: tuple[ReferenceRow, ...] = ()
    contract: ContractRef | None = Field(
        default=None, description="The features bundle (contract) a model was trained "
        "against; absent in bundles made before contracts were versioned.")
    reference: Reference | None = Field(
        default=None, description="Histograms of the training rows (features, score) that "
        "monitoring compares what is scored with; absent in bundles made before issue 15.")

    @model_validator(mode="after")
    def _family_shape(self) -> Manifest:
        for name in self.files:
            if name == "manifest.json" or not _safe_name(name):
                raise ValueError(f"file name {name!r} is not allowed in a bundle")
        for model, file in self.models.items():
            if file not in self.files:
                raise ValueError(f"model {model} points to {file}, which has no sha256 entry")
        if self.family in MODEL_FAMILIES:
            if not self.models:
                raise ValueError(f"a {self.family} bundle needs at least one model")
            if not self.features:
                raise ValueError(f"a {self.family} bundle must declare its features")
            if not self.reference_rows:
                raise ValueError(f"a {self.family} bundle needs reference rows to replay")
        if self.family == "tier" and self.wealth is None and len(self.classes) < 2:
            raise ValueError("a tier bundle must name its classes or describe its wealth model")
        if self.wealth is not None and (self.family != "tier" or self.classes):
            raise ValueError("wealth belongs to a tier bundle without classes")
        if self.family in ("tier", "churn") and len(self.models) != 1:
            raise ValueError(f"a {self.family} bundle holds exactly one model")
        if self.family not in MODEL_FAMILIES and (self.models or self.contract is not None):
            raise ValueError(f"a {self.family} bundle holds no models and no contract "
                             "reference")
        if self.family not in MODEL_FAMILIES and self.reference is not None:
            raise ValueError(f"a {self.family} bundle holds no training reference")
        if self.reference is not None:
            declared = {f.name: f for f in self.features}
            for name, hist in self.reference.features.items():
                spec = declared.get(name)
                if spec is None:
                    raise ValueError(f"the training reference counts {name!r}, which the "
                                     "bundle does not declare")
                if (hist.categories is not None) != (spec.kind in ("category", "boolean")):
                    raise ValueError(f"the training reference of {name!r} does not fit its "
                                     f"kind ({spec.kind})")
        if self.family in CONFIG_FILES and CONFIG_FILES[self.family] not in self.files:
            raise ValueError(f"a {self.family} bundle needs {CONFIG_FILES[self.family]}")
        return self


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and all(p not in ("", ".", "..") for p in parts)
        and all(c.isalnum() or c in "._-/" for c in name)
    )
