"""YAML sources: every problem at its line, hostile YAML refused before it costs anything."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.decisions.policy import Policy
from app.features.family import FeatureContract
from app.sources import yaml_source
from app.sources.sources import load_source
from app.sources.yaml_source import SourceError, read_yaml

GOOD = """\
name: bank
roles:
  aum: balance
  age: age
  risk_profile: null
  risk_assessment_age_days: null
  days_to_next_maturity: null
features:
  - name: age
    kind: integer
    minimum: 18
    maximum: 120
    nullable: false
  - name: balance
    kind: number
    minimum: 0
"""


def _write(tmp_path: Path, text: str | bytes, name: str = "src.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path, kind: str = "features") -> list[str]:
    with pytest.raises(SourceError) as info:
        load_source(path, kind)
    text = str(info.value)
    assert "Traceback" not in text
    return text.splitlines()


def test_a_good_source_validates(tmp_path: Path) -> None:
    contract = load_source(_write(tmp_path, GOOD), "features")
    assert isinstance(contract, FeatureContract)
    assert [f.name for f in contract.features] == ["age", "balance"]
    assert contract.roles.aum == "balance" and contract.roles.risk_profile is None


def test_each_problem_names_file_line_and_field(tmp_path: Path) -> None:
    src = _write(tmp_path, GOOD.replace("    kind: number\n", "    kind: numbr\n    colour: 3\n")
                 .replace("maximum: 120", "maximum: 10"))
    lines = _problems(src)
    assert lines[0] == f"{src}:9: features[0]: age: minimum above maximum"
    assert lines[1].startswith(f"{src}:15: features[1].kind: Input should be 'number'")
    assert lines[2] == (f"{src}:16: features[1].colour: unknown field; allowed here: name, "
                        "kind, unit, minimum, maximum, categories, nullable, description, "
                        "example, reason")
    assert len(lines) == 3


def test_a_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    src = _write(tmp_path, GOOD.replace("  - name: balance\n    kind: number\n",
                                        "  - name: balance\n"))
    assert _problems(src) == [f"{src}:14: features[1].kind: Field required"]


def test_model_level_errors_point_at_the_field_they_name(tmp_path: Path) -> None:
    src = _write(tmp_path, GOOD.replace("aum: balance", "aum: assets"))
    [line] = _problems(src)
    assert line.startswith(f"{src}:3: roles.aum: roles.aum names 'assets'")
    dup = _write(tmp_path, GOOD.replace("name: balance", "name: age"), "dup.yaml")
    problems = _problems(dup)
    assert any(p.startswith(f"{dup}:14: features[1].name: feature names must be unique: age")
               for p in problems), problems


def test_policy_order_error_points_at_tiers(tmp_path: Path) -> None:
    src = _write(tmp_path, "churn_bands:\n  - {band: low, min_probability: 0}\n"
                 "tiers:\n  - {tier: mass, min_aum: 10}\n")
    [line] = _problems(src, "policy")
    assert line.startswith(f"{src}:3: tiers: tiers must start at min_aum 0")
    ok = _write(tmp_path, "tiers: [{tier: mass, min_aum: 0}]\n"
                "churn_bands: [{band: low, min_probability: 0}]\n", "ok.yaml")
    assert isinstance(load_source(ok, "policy"), Policy)


def test_yes_no_categories_get_a_quoting_hint(tmp_path: Path) -> None:
    src = _write(tmp_path, GOOD + "  - name: seg\n    kind: category\n    categories: [a, no]\n")
    [line] = _problems(src)
    assert line.startswith(f"{src}:19: features[2].categories[1]: Input should be a valid string")
    assert "quote it" in line


# ------------------------------------------------------------------------------ hostile YAML


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    src = _write(tmp_path, GOOD.replace("    minimum: 18\n", "    minimum: 18\n    minimum: 0\n"))
    [line] = _problems(src)
    assert line.startswith(f"{src}:12: features[0].minimum: duplicate key (first written on "
                           "line 11)")


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    src = _write(tmp_path, "\n".join(rows) + "\nfeatures: *a9\n")
    started = time.perf_counter()
    [line] = _problems(src)
    assert time.perf_counter() - started < 2.0
    assert "expands to more than" in line and "anchors and aliases" in line


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    text = GOOD.replace("  - name: age\n", "  - &base\n    name: age\n")
    assert load_source(_write(tmp_path, text), "features").features[0].name == "age"


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    src = _write(tmp_path, "features: &a [1, *a]\n")
    [line] = _problems(src)
    assert line == f"{src}:1: (file): an alias refers to the node that contains it"


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    src = _write(tmp_path, "features: " + "[" * 5000 + "]" * 5000 + "\n")
    [line] = _problems(src)
    assert "nests deeper than 64 levels" in line


def test_deep_nesting_through_aliases_is_refused(tmp_path: Path) -> None:
    rows = ["a0: &a0 " + "[" * 40 + "]" * 40]
    rows += [f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40 for i in range(1, 4)]
    [line] = _problems(_write(tmp_path, "\n".join(rows) + "\n"))
    assert "through anchors and aliases" in line


@pytest.mark.parametrize(("text", "problem"), [
    ("- a\n- b\n", "the top level must be a mapping of fields, not a list"),
    ("just text\n", "the top level must be a mapping of fields, not a single value"),
    ("", "the file is empty"),
    ("# only a comment\n", "the file is empty"),
    ("a: 1\n---\nb: 2\n", "expected a single document"),
    ("features: [\n", "not valid YAML"),
    ("features: !!python/object/apply:os.system ['echo hi']\n", "could not determine a "
     "constructor for the tag"),
    ("features: !!python/name:os.system\n", "could not determine a constructor"),
    ("features: !custom x\n", "could not determine a constructor"),
    ("? [a, b]\n: 1\n", "a key must be plain text"),
])
def test_hostile_or_malformed_documents(tmp_path: Path, text: str, problem: str) -> None:
    lines = _problems(_write(tmp_path, text))
    assert any(problem in line for line in lines), lines


def test_python_tags_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    src = _write(tmp_path, f"features: !!python/object/apply:os.system ['touch {marker}']\n")
    _problems(src)
    assert not marker.exists()


def test_tabs_in_indentation_are_named_by_line(tmp_path: Path) -> None:
    src = _write(tmp_path, GOOD.replace("    kind: number\n", "\tkind: number\n"))
    assert _problems(src) == [f"{src}:15: (file): a tab in the indentation: YAML indents with "
                              "spaces only"]


def test_a_tab_inside_a_value_is_fine(tmp_path: Path) -> None:
    src = _write(tmp_path, GOOD.replace("name: bank", 'name: bank\ndescription: "a\\tb"'))
    assert load_source(src, "features").description == "a\tb"


def test_huge_files_are_refused_before_parsing(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_source, "MAX_SOURCE_BYTES", 1000)
    src = _write(tmp_path, GOOD + "#" * 2000 + "\n")
    [line] = _problems(src)
    assert line == (f"{src}:1: (file): the file is larger than 1000 bytes; a source this big "
                    "is not a hand-written contract, catalogue or policy")


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    src = _write(tmp_path, GOOD.encode() + b"  - name: \xff\n")
    assert _problems(src) == [f"{src}:17: (file): the file is not UTF-8 text"]


def test_a_missing_file_is_a_source_error(tmp_path: Path) -> None:
    [line] = _problems(tmp_path / "absent.yaml")
    assert "cannot read the file" in line


def test_lines_of_nested_items(tmp_path: Path) -> None:
    src = read_yaml(_write(tmp_path, GOOD))
    assert src.lines[("features", 1)] == 14
    assert src.lines[("features", 1, "minimum")] == 16
    assert src.line_of(("features", 1, "unknown", 3)) == 14


def test_a_misspelt_field_gets_a_suggestion(tmp_path: Path) -> None:
    src = _write(tmp_path, "tiers: [{tier: mass, min_aum: 0}]\nchurn_bands: [{band: low, "
                 "min_probability: 0}]\nchallenger:\n  mode: shadow\n  shares: 0.1\n")
    assert _problems(src, "policy") == [
        f"{src}:5: challenger.shares: unknown field (did you mean share?); allowed here: "
        "mode, share"]


def test_aliases_and_merge_keys_share_blocks(tmp_path: Path) -> None:
    src = _write(tmp_path, """\
tiers:
  - &mass {tier: mass, min_aum: 0}
  - {<<: *mass, tier: affluent, min_aum: 100000}
churn_bands: [{band: low, min_probability: 0}]
challenger: &off {mode: "off", share: 0}
""")
    policy = load_source(src, "policy")
    assert [t.tier for t in policy.tiers] == ["mass", "affluent"]
    assert policy.tiers[1].min_aum == 100000


def test_windows_line_endings_and_a_bom(tmp_path: Path) -> None:
    src = _write(tmp_path, b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    assert load_source(src, "features").name == "bank"
    bad = _write(tmp_path, ("\ufeff" + GOOD.replace("kind: number", "kind: nope"))
                 .replace("\n", "\r\n").encode(), "bad.yaml")
    assert _problems(bad)[0].startswith(f"{bad}:15: features[1].kind:")
