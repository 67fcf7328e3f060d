"""The report's SVG plots and page: well-formed, every text escaped, nothing external."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from app.monitoring import plots
from app.monitoring.report_html import render

HOSTILE = '<script>alert("x")</script> & "quotes" \u202e'


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def test_every_plot_is_well_formed_and_escapes_its_texts() -> None:
    svgs = [
        plots.bars(HOSTILE, [HOSTILE, "b"], {HOSTILE: [0.5, 0.25], "scored": [0.0, 1.0]}),
        plots.hbars(HOSTILE, [(HOSTILE, 0.3), ("b", 0.1)], threshold=0.25),
        plots.calibration_curve(HOSTILE, [(0.1, 0.12, 0.08, 0.15, 100)]),
        plots.intervals(HOSTILE, [(HOSTILE, 0.1, 0.08, 0.12)]),
        plots.bars("empty", [], {}), plots.hbars("empty", []),
        plots.intervals("empty", []), plots.calibration_curve("empty", []),
    ]
    for svg in svgs:
        _parse(svg)
        assert "<script" not in svg


def test_the_page_is_self_contained_and_escaped() -> None:
    report = {
        "window": {"since": "2026-11-01", "until": "2026-11-30"},
        "thresholds": {"psi": 0.25},
        "alerts": [{"kind": "feature_drift", "family": "churn", "version": 1,
                    "alias": "production", "feature": HOSTILE, "value": 0.4,
                    "threshold": 0.25}],
        "drift": [{"family": "churn", "version": 1, "alias": "production", "rows": 10,
                   "reference": True, "drifted": [HOSTILE],
                   "features": [{"feature": HOSTILE, "psi": 0.4, "bins": [], "expected": [],
                                 "actual": []}],
                   "score": {"psi": 0.01, "bins": ["<0.1", ">=0.1"], "expected": [5, 5],
                             "actual": [4, 6]}}],
        "calibration": {"churn": {}, "products": {}},
        "actions": [],
    }
    page = render(report)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert not re.search(r'(src|href)\s*=', page)
    assert page.count("<svg") == 2
