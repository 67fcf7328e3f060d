"""The output of a whole-book run: one row per customer, its columns fixed by the context and
the options before the first row is read (docs/book.md lists them).

- `customer_id`
- `control`, only when the live policy has a control group (share above 0): the customer is
  in it, so no product was recommended (the API's `control`)
- tier: `tier_booked`, `tier_predicted`, `tier_predicted_wealth`, `tier_upgrade_candidate`,
  then `tier_p_<tier>` per policy tier (the API's tier.probabilities)
- churn: `churn_probability`, `churn_band`, and with explain `churn_reasons` (a list of
  {code, feature, direction, contribution, text}, as the API's churn.reasons)
- recommendations, flat (default): for k = 1..top N `rec<k>_action_id`, `rec<k>_priority`,
  `rec<k>_propensity`, `rec<k>_reasons` (null past a customer's last recommendation); nested
  (--nested): one `recommendations` column holding the API's list of recommendation objects
  (with explain, each with `explanation`, null for actions that are not products).

The Parquet file's key-value metadata `tierwise` holds the versions and sha256 of every family
that scored it, and the options (`run_metadata`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from app.book.options import BookOptions
from app.scoring.context import ScoringContext

METADATA_KEY = b"tierwise"
FORMAT = "tierwise-scored-book/1"

REASON = pa.struct([("code", pa.string()), ("feature", pa.string()),
                    ("direction", pa.string()), ("contribution", pa.float64()),
                    ("text", pa.string())])
RECOMMENDATION = pa.struct([
    ("action_id", pa.string()), ("name", pa.string()), ("category", pa.string()),
    ("kind", pa.string()), ("risk_level", pa.string()), ("priority", pa.float64()),
    ("propensity", pa.float64()), ("context_weight", pa.float64()), ("value", pa.float64()),
    ("lever", pa.float64()), ("reasons", pa.list_(pa.string()))])
# With explain: the features that raised a product's propensity (the API's
# recommendations[].explanation; null for actions that are not products).
PRODUCT_REASON = pa.struct([("code", pa.string()), ("feature", pa.string()),
                            ("contribution", pa.float64()), ("text", pa.string())])
RECOMMENDATION_EXPLAINED = pa.struct([*RECOMMENDATION,
                                      pa.field("explanation", pa.list_(PRODUCT_REASON))])
FLAT_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("action_id", pa.string()), ("priority", pa.float64()), ("propensity", pa.float64()),
    ("reasons", pa.list_(pa.string())))


def column_word(name: str) -> str:
    """A tier name as part of a column name: lower case, other characters → `_`."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "tier"


class OutputLayout:
    """The output schema of one context and options, and results → Arrow record batches."""

    def __init__(self, ctx: ScoringContext, options: BookOptions) -> None:
        self.options = options
        self.classes: tuple[str, ...] = tuple(ctx.constants.classes)
        self.top_n = options.top_n_for(ctx)
        fields: list[pa.Field] = [pa.field("customer_id", pa.string(), nullable=False)]
        self.control = ctx.policy.control_group.share > 0.0
        if self.control:
            fields.append(pa.field("control", pa.bool_()))
        if "tier" in options.parts:
            fields += [pa.field("tier_booked", pa.string()),
                       pa.field("tier_predicted", pa.string()),
                       pa.field("tier_predicted_wealth", pa.float64()),
                       pa.field("tier_upgrade_candidate", pa.bool_())]
            fields += [pa.field(f"tier_p_{column_word(c)}", pa.float64()) for c in self.classes]
        if "churn" in options.parts:
            fields += [pa.field("churn_probability", pa.float64()),
                       pa.field("churn_band", pa.string())]
            if options.explain:
                fields.append(pa.field("churn_reasons", pa.list_(REASON)))
        if "recommendations" in options.parts:
            if options.nested:
                fields.append(pa.field("recommendations", pa.list_(
                    RECOMMENDATION_EXPLAINED if options.explain else RECOMMENDATION)))
            else:
                fields += [pa.field(f"rec{k}_{name}", kind)
                           for k in range(1, self.top_n + 1) for name, kind in FLAT_FIELDS]
        self.metadata = run_metadata(ctx, options)
        self.schema = pa.schema(fields, metadata={METADATA_KEY: json.dumps(self.metadata)})
        self._results = _result_type(self.classes, options, control=self.control)

    def batch(self, results: Sequence[dict[str, Any]]) -> pa.RecordBatch:
        """The scored customers (score_rows' dicts) as one record batch of this schema.

        Arrow reads the dicts (only the fields the output has) into one struct array in C;
        the columns are its children, the k-th recommendation by the list offsets."""
        got = pa.array(results, type=self._results)
        cols: dict[str, Any] = {"customer_id": got.field("customer_id")}
        if self.control:
            cols["control"] = got.field("control")
        parts = self.options.parts
        if "tier" in parts:
            tier = got.field("tier")
            for name in ("booked", "predicted", "predicted_wealth", "upgrade_candidate"):
                cols[f"tier_{name}"] = tier.field(name)
            probs = tier.field("probabilities")
            for c in self.classes:
                cols[f"tier_p_{column_word(c)}"] = probs.field(c)
        if "churn" in parts:
            churn = got.field("churn")
            cols["churn_probability"] = churn.field("probability")
            cols["churn_band"] = churn.field("band")
            if self.options.explain:
                cols["churn_reasons"] = churn.field("reasons")
        if "recommendations" in parts:
            recs = got.field("recommendations")
            if self.options.nested:
                cols["recommendations"] = recs
            else:
                offsets = recs.offsets.to_numpy()
                starts, lengths = offsets[:-1], np.diff(offsets)
                values = recs.values
                for k in range(self.top_n):
                    # the k-th recommendation of each customer, null past the last one
                    kth = pa.array(starts + k, mask=lengths <= k)
                    for name, _ in FLAT_FIELDS:
                        cols[f"rec{k + 1}_{name}"] = values.field(name).take(kth)
        return pa.RecordBatch.from_arrays([cols[f.name] for f in self.schema],
                                          schema=self.schema)

    def empty(self) -> pa.RecordBatch:
        return self.batch([])


def _result_type(classes: Sequence[str], options: BookOptions, *,
                 control: bool = False) -> pa.StructType:
    """The part of score_rows' result dicts that the output holds, as an Arrow type."""
    fields = [pa.field("customer_id", pa.string())]
    if control:
        fields.append(pa.field("control", pa.bool_()))
    if "tier" in options.parts:
        fields.append(pa.field("tier", pa.struct([
            ("booked", pa.string()), ("predicted", pa.string()),
            ("predicted_wealth", pa.float64()), ("upgrade_candidate", pa.bool_()),
            ("probabilities", pa.struct([(c, pa.float64()) for c in classes]))])))
    if "churn" in options.parts:
        churn = [("probability", pa.float64()), ("band", pa.string())]
        if options.explain:
            churn.append(("reasons", pa.list_(REASON)))
        fields.append(pa.field("churn", pa.struct(churn)))
    if "recommendations" in options.parts:
        item = (pa.struct(list(FLAT_FIELDS)) if not options.nested
                else RECOMMENDATION_EXPLAINED if options.explain else RECOMMENDATION)
        fields.append(pa.field("recommendations", pa.list_(item)))
    return pa.struct(fields)


def run_metadata(ctx: ScoringContext, options: BookOptions) -> dict[str, Any]:
    """What a scored book records about its run: versions and sha256 of every family (the
    API's `models`), and the options."""
    return {"format": FORMAT, "models": dict(ctx.models_served),
            "options": options.as_dict(ctx)}


def read_metadata(source: pa.Schema | str | Path) -> dict[str, Any]:
    """The run metadata of a scored Parquet book (its path: with the row counts written at
    the end), or of a schema (empty when it has none)."""
    if isinstance(source, pa.Schema):
        raw = (source.metadata or {}).get(METADATA_KEY)
    else:
        import pyarrow.parquet as pq

        raw = (pq.read_metadata(source).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def to_text_columns(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with every list column as JSON text (CSV has no nested values)."""
    arrays, fields = [], []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_list(field.type):
            array = pa.array([None if v is None else json.dumps(v) for v in array.to_pylist()],
                             type=pa.string())
            field = pa.field(field.name, pa.string())
        arrays.append(array)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields,
                                                              metadata=batch.schema.metadata))
