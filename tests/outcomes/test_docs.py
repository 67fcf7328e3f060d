"""docs/outcomes.md says what the code does: settings and defaults, outcome values, payload
keys, the token's size, the control-group snippet, the history bound."""

from __future__ import annotations

import datetime as dt
import re

import yaml

from app.config import PROJECT_ROOT, Settings
from app.decisions.policy import ControlGroup
from app.outcomes.decision_ids import DECIDING_FAMILIES, DecisionSigner
from app.registry import history
from app.registry.tables import OUTCOMES

DOC = (PROJECT_ROOT / "docs" / "outcomes.md").read_text(encoding="utf-8")


def test_the_settings_and_their_defaults() -> None:
    rows = re.findall(r"^\| `TIERWISE_(\w+)` \| (\d+) \|", DOC, re.M)
    assert {name for name, _ in rows} == {"OUTCOMES_MAX_PER_REQUEST", "OUTCOMES_RETENTION_DAYS",
                                          "OUTCOMES_MAX_ROWS"}
    for name, default in rows:
        assert Settings.model_fields[name.lower()].default == int(default), name
    for name in re.findall(r"`TIERWISE_(\w+)", DOC):
        assert name.lower() in Settings.model_fields, name
    assert Settings.model_fields["decision_ids"].default is True
    assert Settings.model_fields["contact_history_from_outcomes"].default is False


def test_the_outcome_values() -> None:
    listed = re.search(r"`outcome` is one of (.*?)\(the customer left\)", DOC, re.S)
    assert listed is not None
    assert re.findall(r"`(\w+)`", listed.group(1)) == list(OUTCOMES)


def test_the_payload_keys_and_the_token_size() -> None:
    keys = re.findall(r"^\| `(\w+)` \|", DOC.split("## Decision ids")[1].split("##")[0], re.M)
    token = DecisionSigner.from_text("docs secret of some length").make(
        customer_id="C000000123", action_id="credit_card", as_of=dt.date(2026, 11, 23),
        versions={f: 1 for f in ("features", "tier", *DECIDING_FAMILIES)},
        alias="production", group="treatment", rank=1, churn_probability=0.65,
        propensity=0.3087)
    decision = DecisionSigner.from_text("docs secret of some length").verify(token)
    assert decision is not None and keys == list(decision.payload())
    assert 230 <= len(token) <= 270  # "about 250 characters"
    assert "churn, products, catalog, policy" in DOC
    assert tuple(decision.versions) == DECIDING_FAMILIES


def test_the_control_group_snippet_is_a_valid_policy_part() -> None:
    snippet = re.search(r"```yaml\n(control_group:.*?)```", DOC, re.S)
    assert snippet is not None
    group = ControlGroup(**yaml.safe_load(snippet.group(1))["control_group"])
    assert (group.share, group.salt) == (0.05, "2026q4")


def test_the_history_bound() -> None:
    assert "one query\nper 500 customers of a request, at most 100 rows per customer" in DOC
    assert (history.CHUNK, history.EVENTS_PER_CUSTOMER) == (500, 100)


def test_the_readme_names_the_same_outcomes() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`POST /v1/outcomes`: {', '.join(OUTCOMES)})" in readme
