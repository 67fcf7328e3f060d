"""Request and response shapes of the scoring API (v1), as the OpenAPI contract shows them.

Requests are strict outside `features`: no string or number is coerced to a boolean, no
string to an integer, no boolean to a number (`"top_n": "3"`, `"explain": "yes"` and
`"explain": 0` are 422). Dates are ISO strings (`2026-11-01`) on the wire. The features
object is checked by its own validator (app/features), which knows each feature's type.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from app.features.contract import DEFAULT_FEATURES, default_example
from app.features.spec import FeatureSpec

Part = Literal["tier", "churn", "recommendations"]
ChannelName = Literal["branch", "mobile", "online", "call_centre", "rm"]
FamilyName = Literal["features", "tier", "churn", "products", "catalog", "policy"]
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    # Strict models take a date only as a date object; JSON carries it as a string, so the
    # string form is parsed here, the same way in JSON and Python validation.
    if not isinstance(value, str):
        return value
    if not _ISO_DATE.fullmatch(value):
        raise PydanticCustomError("date_format", "must be a date as YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise PydanticCustomError("date_value", "is not a valid date: {why}",
                                  {"why": str(exc)}) from None


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]


def whole_number(value: object) -> object:
    """3.0 as 3: JSON has one number type, and JSON Schema counts 3.0 as an integer. 3.5,
    "3" and true are not integers; strict validation refuses them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# (constraints before the validator, so the schema says minimum/maximum)
TopN = Annotated[int, Field(ge=1, le=50), BeforeValidator(whole_number)]


def _feature_json_schema(spec: FeatureSpec) -> dict[str, Any]:
    unit = f" Unit: {spec.unit}." if spec.unit else ""
    value: dict[str, Any] = {"type": "string" if spec.kind == "category" else spec.kind}
    if spec.kind == "category":
        value["enum"] = list(spec.categories)
    if spec.minimum is not None:
        value["minimum"] = spec.minimum
    if spec.maximum is not None:
        value["maximum"] = spec.maximum
    # Nullable as pydantic writes Optional: anyOf [value, null]. Generated clients read it as
    # "this type or None" (an enum with null added confuses openapi-python-client).
    schema: dict[str, Any] = {"anyOf": [value, {"type": "null"}]} if spec.nullable else value
    schema["description"] = spec.description + unit
    if spec.example is not None:
        schema["example"] = spec.example
    return schema


def features_json_schema(specs: Sequence[FeatureSpec]) -> dict[str, Any]:
    """The CustomerFeatures schema of a feature contract's specs (the default contract's is
    in openapi.yaml; a server shows its live contract's)."""
    return {
        "type": "object",
        "title": "CustomerFeatures",
        "description": "The customer's features by name, as the live feature contract "
        "declares them (GET /v1/contract; openapi.yaml lists the default contract's). Unknown "
        "names are rejected (422), never ignored. Nullable features may be null or left out "
        "(read as missing).",
        "properties": {s.name: _feature_json_schema(s) for s in specs},
        "required": [s.name for s in specs if not s.nullable],
        "additionalProperties": False,
        "example": {s.name: s.example for s in specs},
    }


FEATURES_SCHEMA: dict[str, Any] = features_json_schema(DEFAULT_FEATURES)

Features = Annotated[dict[str, Any], WithJsonSchema(FEATURES_SCHEMA)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ContactEventIn(_In):
    action_id: str = Field(min_length=1, max_length=64,
                           description="An action id of the live catalogue (else 422).")
    date: IsoDate = Field(description="When the action was offered, declined or accepted "
                                      "(not after the decision day).")
    outcome: Literal["offered", "declined", "accepted"]


class ScoreContext(_In):
    """Where and when the customer is being served, and what they were offered lately."""

    channel: ChannelName | None = Field(default=None, description="Channel serving the customer.")
    as_of: IsoDate | None = Field(default=None,
                                  description="The day of the decision (default: today, UTC).")
    history: list[ContactEventIn] = Field(
        default_factory=list, max_length=1000,
        description="Recent offers, declines and acceptances, for the contact policy.",
    )


# A version number or an alias; digits bounded so a pin is never a number no database holds.
PinValue = Annotated[str, Field(pattern=r"^(?:[1-9][0-9]{0,8}|production|staging|challenger)$")]


class ScoreOptions(_In):
    parts: list[Part] | None = Field(
        default=None, description="Which parts to compute (default all); you pay only for these."
    )
    top_n: TopN | None = Field(default=None, description="Recommendations to return.")
    explain: bool = Field(default=True, description="Reasons (on unless false): churn reasons "
                          "and, for every recommended product, the features that raised its "
                          "propensity (exact SHAP values), as sentences with stable codes.")
    include_suppressed: bool = Field(
        default=False, description="Also list the actions not recommended, with a reason code."
    )
    pin: dict[FamilyName, PinValue] = Field(
        default_factory=dict,
        description="Score with a given version number or alias per family (replay, compare); "
        "an unknown version or an alias that is not set is a 404.",
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


# Each item is checked on its own (an item that breaks the contract gets its own error entry
# in the results), so the envelope takes any object as an item and says which shape is meant.
_BATCH_ITEMS_SCHEMA = {
    "type": "array", "minItems": 1,
    "description": "Customers to score, each a BatchItem. Each is checked on its own: an item "
    "that does not follow BatchItem gets an error entry in `results`, the others are scored.",
    "items": {"anyOf": [{"$ref": "#/components/schemas/BatchItem"}, {"type": "object"}]},
}


class BatchRequest(_In):
    items: Annotated[list[dict[str, Any]], WithJsonSchema(_BATCH_ITEMS_SCHEMA)] = Field(
        min_length=1)
    options: ScoreOptions | None = None


# --- responses (the endpoint serialises plain dicts for speed; these document them)


class TierOut(BaseModel):
    booked: str | None = Field(description="Tier booked from AUM at this bank (policy thresholds).")
    predicted: str = Field(description="Likely true (wallet) tier across all banks.")
    predicted_wealth: float | None = Field(
        description="Median predicted wallet wealth across all banks, never below the AUM "
        "booked here; its tier under the live policy's thresholds is `predicted`. Null for "
        "a tier model that predicts fixed classes instead of wealth.")
    probabilities: dict[str, float] = Field(
        description="Probability of each policy tier (0 below the booked tier).")
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


class ProductReasonOut(BaseModel):
    code: str = Field(description="Stable reason code of the feature.")
    feature: str
    contribution: float = Field(description="SHAP contribution to the propensity, in log-odds "
                                            "(positive: it raised it).")
    text: str


class RecommendationOut(BaseModel):
    action_id: str
    name: str
    category: str
    kind: Literal["product", "retention", "service"]
    risk_level: str | None = Field(description="R1 to R5; null for actions without one.")
    priority: float = Field(description="propensity × context_weight × value × lever")
    propensity: float
    context_weight: float
    value: float
    lever: float
    reasons: list[str]
    explanation: list[ProductReasonOut] | None = Field(
        default=None, description="With explain: the features that raised this product's "
        "propensity most for this customer (products only; their texts end `reasons`).")
    decision_id: str | None = Field(
        default=None, description="A signed token naming this decision (customer, action, "
        "day, versions, alias, group, rank): post outcomes with it (POST /v1/outcomes). "
        "Absent when TIERWISE_DECISION_IDS is false. See docs/outcomes.md.")


class SuppressedOut(BaseModel):
    action_id: str
    reason_code: str
    detail: str


class VersionOut(BaseModel):
    version: int
    sha256: str


class ScoreResult(BaseModel):
    customer_id: str
    control: bool = Field(
        default=False, description="The customer is in the policy's control group: no "
        "product is offered (retention and service actions still are); `held_out` lists "
        "the products withheld.")
    tier: TierOut | None = None
    churn: ChurnOut | None = None
    recommendations: list[RecommendationOut] | None = None
    held_out: list[RecommendationOut] | None = Field(
        default=None, description="Control group only: the product recommendations "
        "withheld, each with a decision_id in group control (to measure uplift).")
    contact_history: Literal["recorded", "unavailable"] | None = Field(
        default=None, description="With TIERWISE_CONTACT_HISTORY_FROM_OUTCOMES, for a "
        "customer sent without context.history: recorded (read from outcomes) or "
        "unavailable (the database could not be reached; scored without history).")
    suppressed: list[SuppressedOut] | None = Field(
        default=None, description="Only when options.include_suppressed is true.")


_SHA = "008bc2110bb192b201954d4768b424779baf5d96bd63f09400eea724060a16dc"
# A real response of the default models (README's curl example), trimmed.
_RESPONSE_EXAMPLE: dict[str, Any] = {
    "customer_id": "C000123",
    "tier": {"booked": "affluent", "predicted": "hnw", "predicted_wealth": 1834000.0,
             "upgrade_candidate": True,
             "probabilities": {"mass": 0.0009, "affluent": 0.0155, "hnw": 0.9763,
                               "private": 0.0074}},
    "churn": {"probability": 0.5497, "band": "high", "reasons": [
        {"code": "balance_trend", "feature": "balance_trend_90d", "direction": "raises_risk",
         "contribution": 1.978236, "text": "balance down 45% in 90 days"}]},
    "recommendations": [
        {"action_id": "retention_rm_call", "name": "Relationship manager call",
         "category": "retention", "kind": "retention", "risk_level": None,
         "priority": 0.8246, "propensity": 0.5497, "context_weight": 1.5, "value": 1.0,
         "lever": 1.0, "reasons": ["churn risk 55% (retention threshold 35%)",
                                   "suits the rm channel (x1.5)"]}],
    "models": {f: {"version": 1, "sha256": _SHA}
               for f in ("features", "tier", "churn", "products", "catalog", "policy")},
    "request_id": "24a8eab8377944b5ba289078d8309b7d",
}


class ScoreResponse(ScoreResult):
    models: dict[str, VersionOut] = Field(description="The version of each family that decided.")
    request_id: str

    model_config = ConfigDict(json_schema_extra={"examples": [_RESPONSE_EXAMPLE]})


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable: invalid_feature, not_found, ...")
    message: str
    details: list[ErrorDetail]


class ErrorResponse(BaseModel):
    """The one error shape every error of the API has."""

    error: ErrorBody


class BatchResultItem(ScoreResult):
    index: int = Field(description="The item's position in the request.")
    customer_id: str | None = None  # type: ignore[assignment]
    error: ErrorBody | None = Field(default=None, description="Why this item was not scored.")
    models: dict[str, VersionOut] | None = Field(
        default=None, description="When items were scored by different versions (a challenger "
        "serving a share of customers), the versions that scored this one.")


class BatchResponse(BaseModel):
    results: list[BatchResultItem] = Field(description="One per item, in input order.")
    models: dict[str, VersionOut]
    request_id: str
    scored: int
    failed: int
