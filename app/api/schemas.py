"""Request and response shapes of the scoring API (v1), as the OpenAPI contract shows them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from app.features.contract import DEFAULT_FEATURES, default_example
from app.features.spec import FeatureSpec

Part = Literal["tier", "churn", "recommendations"]
ChannelName = Literal["branch", "mobile", "online", "call_centre", "rm"]
FamilyName = Literal["tier", "churn", "products", "catalog", "policy"]


def _feature_json_schema(spec: FeatureSpec) -> dict[str, Any]:
    unit = f" Unit: {spec.unit}." if spec.unit else ""
    schema: dict[str, Any] = {"description": spec.description + unit}
    if spec.kind == "category":
        schema["type"] = "string"
        schema["enum"] = list(spec.categories)
    else:
        schema["type"] = {"number": "number", "integer": "integer", "boolean": "boolean"}[spec.kind]
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    if spec.nullable:
        schema["type"] = [schema["type"], "null"]
    if spec.example is not None:
        schema["example"] = spec.example
    return schema


FEATURES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "CustomerFeatures",
    "description": "The customer's features by name. The default models read the ones listed "
    "here; a model version may declare more, sent in the same object. Unknown names are "
    "rejected, never ignored. Nullable features may be null or left out (read as missing).",
    "properties": {s.name: _feature_json_schema(s) for s in DEFAULT_FEATURES},
    "required": [s.name for s in DEFAULT_FEATURES if not s.nullable],
    "additionalProperties": True,
    "example": default_example(),
}

Features = Annotated[dict[str, Any], WithJsonSchema(FEATURES_SCHEMA)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactEventIn(_In):
    action_id: str = Field(min_length=1, max_length=64, description="Catalogue action id.")
    date: dt.date = Field(description="When the action was offered, declined or accepted.")
    outcome: Literal["offered", "declined", "accepted"]


class ScoreContext(_In):
    """Where and when the customer is being served, and what they were offered lately."""

    channel: ChannelName | None = Field(default=None, description="Channel serving the customer.")
    as_of: dt.date | None = Field(
        default=None, description="The day of the decision (default: today, UTC)."
    )
    history: list[ContactEventIn] = Field(
        default_factory=list, max_length=1000,
        description="Recent offers, declines and acceptances, for the contact policy.",
    )


class ScoreOptions(_In):
    parts: list[Part] | None = Field(
        default=None, description="Which parts to compute (default all); you pay only for these."
    )
    top_n: int | None = Field(default=None, ge=1, le=50, description="Recommendations to return.")
    explain: bool = Field(default=False, description="Compute churn reasons (SHAP).")
    include_suppressed: bool = Field(
        default=False, description="Also list the actions not recommended, with a reason code."
    )
    pin: dict[FamilyName, str] = Field(
        default_factory=dict,
        description="Score with a given version number or alias per family (replay, compare).",
    )


CustomerId = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$",
          description="The caller's opaque customer id, echoed back; never interpreted."),
]


class ScoreRequest(_In):
    customer_id: CustomerId
    features: Features
    context: ScoreContext | None = None
    options: ScoreOptions | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "customer_id": "C000123",
                "features": default_example(),  # type: ignore[dict-item]
                "context": {"channel": "mobile", "history": [
                    {"action_id": "credit_card", "date": "2026-11-01", "outcome": "declined"}]},
                "options": {"explain": True, "include_suppressed": True},
            }]
        },
    )


class BatchItem(_In):
    customer_id: CustomerId
    features: Features
    context: ScoreContext | None = None


class BatchRequest(_In):
    items: Annotated[
        list[dict[str, Any]],
        WithJsonSchema({"type": "array", "items": {"$ref": "#/components/schemas/BatchItem"},
                        "minItems": 1}),
    ] = Field(min_length=1, description="Customers to score; each is checked on its own.")
    options: ScoreOptions | None = None


# --- responses (documented; the routes serialise plain dicts for speed)

# A real response of the default models (README's curl example), trimmed to two actions.
_RESPONSE_EXAMPLE: dict[str, Any] = {
    "customer_id": "C000123",
    "tier": {
        "booked": "affluent",
        "predicted": "hnw",
        "probabilities": {
            "mass": 0.0008624377518587454,
            "affluent": 0.015466943780425738,
            "hnw": 0.9762745184668634,
            "private": 0.007396100000852102
        },
        "upgrade_candidate": True
    },
    "churn": {
        "probability": 0.5497233811053193,
        "band": "high",
        "reasons": [
            {
                "code": "balance_trend",
                "feature": "balance_trend_90d",
                "direction": "raises_risk",
                "contribution": 1.978236,
                "text": "balance down 45% in 90 days"
            },
            {
                "code": "outflow_trend",
                "feature": "outflow_trend_90d",
                "direction": "raises_risk",
                "contribution": 1.226369,
                "text": "transfers to other banks rising 120%"
            },
            {
                "code": "outflow_other_banks",
                "feature": "outflow_other_banks_90d",
                "direction": "raises_risk",
                "contribution": 1.048778,
                "text": "CNY 310,000 moved to other banks in 90 days"
            }
        ]
    },
    "recommendations": [
        {
            "action_id": "retention_rm_call",
            "name": "Relationship manager call",
            "category": "retention",
            "kind": "retention",
            "risk_level": None,
            "priority": 0.8245850716579789,
            "propensity": 0.5497233811053193,
            "context_weight": 1.5,
            "value": 1.0,
            "lever": 1.0,
            "reasons": [
                "churn risk 55% (retention threshold 35%)",
                "suits the rm channel (x1.5)"
            ]
        },
        {
            "action_id": "retention_rate_offer",
            "name": "Preferential rate offer",
            "category": "retention",
            "kind": "retention",
            "risk_level": None,
            "priority": 0.6596680573263831,
            "propensity": 0.5497233811053193,
            "context_weight": 1.5,
            "value": 0.8,
            "lever": 1.0,
            "reasons": [
                "churn risk 55% (retention threshold 35%)",
                "suits the rm channel (x1.5)"
            ]
        }
    ],
    "models": {
        "tier": {
            "version": 1,
            "sha256": "008bc2110bb192b201954d4768b424779baf5d96bd63f09400eea724060a16dc"
        },
        "churn": {
            "version": 1,
            "sha256": "330114ec4c5b8ed454381b5a2861acbe427aecce61c8bc8811163b3052e762ee"
        },
        "products": {
            "version": 1,
            "sha256": "1f135e75589c280598a221d4c42ad58c1b1935a85771ff8e2dea0ac9bd50d398"
        },
        "catalog": {
            "version": 1,
            "sha256": "52c7f41860dec7dc645f449b4a1c7266eff1924c342e02d271d574599a81f1f2"
        },
        "policy": {
            "version": 1,
            "sha256": "12b6757634b1f541f16f5fcc12ef45938eaceaf30e4c97c80623961be4584330"
        }
    },
    "request_id": "24a8eab8377944b5ba289078d8309b7d"
}



class TierOut(BaseModel):
    booked: str | None = Field(description="Tier booked from AUM at this bank (policy thresholds).")
    predicted: str = Field(description="Likely true (wallet) tier across all banks.")
    probabilities: dict[str, float]
    upgrade_candidate: bool = Field(description="Predicted tier is above the booked tier.")


class ReasonOut(BaseModel):
    code: str
    feature: str
    direction: Literal["raises_risk", "lowers_risk"]
    contribution: float = Field(description="SHAP contribution in log-odds.")
    text: str


class ChurnOut(BaseModel):
    probability: float = Field(description="Calibrated probability of churn in 90 days.")
    band: str
    reasons: list[ReasonOut]


class RecommendationOut(BaseModel):
    action_id: str
    name: str
    category: str
    kind: Literal["product", "retention"]
    risk_level: str | None
    priority: float = Field(description="propensity × context_weight × value × lever")
    propensity: float
    context_weight: float
    value: float
    lever: float
    reasons: list[str]


class SuppressedOut(BaseModel):
    action_id: str
    reason_code: str
    detail: str


class VersionOut(BaseModel):
    version: int
    sha256: str


class ScoreResult(BaseModel):
    customer_id: str
    tier: TierOut | None = None
    churn: ChurnOut | None = None
    recommendations: list[RecommendationOut] | None = None
    suppressed: list[SuppressedOut] | None = None


class ScoreResponse(ScoreResult):
    models: dict[str, VersionOut]
    request_id: str

    model_config = ConfigDict(json_schema_extra={"examples": [_RESPONSE_EXAMPLE]})


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorResponse(BaseModel):
    error: ErrorBody


class BatchResultItem(ScoreResult):
    index: int
    customer_id: str | None = None  # type: ignore[assignment]
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    results: list[BatchResultItem]
    models: dict[str, VersionOut]
    request_id: str
    scored: int
    failed: int
