"""Verification in a child process: a verdict in JSON, refusals named, limits enforced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.errors import BundleRejected
from app.scoring.verification import VerifyLimits, verify_archive
from tests.hostile import corpus as c
from tests.registry import bundles as b


def test_a_good_bundle_is_verified_in_a_child() -> None:
    bundle = b.churn_bundle(5)
    verdict = verify_archive(b.archive(bundle), VerifyLimits())
    assert (verdict.family, verdict.sha256) == ("churn", bundle.sha256)


@pytest.mark.parametrize(("text", "check"), [(c.num_leaves_off_by_one, "leaf_value"),
                                             (c.split_feature_out_of_range, "split_feature")])
def test_a_crashing_model_text_is_a_named_refusal(text: Callable[[], str], check: str) -> None:
    with pytest.raises(BundleRejected) as info:
        verify_archive(c.archive(c.churn_files(text())), VerifyLimits())
    assert check in info.value.message
    assert info.value.details[0].field == c.MODEL


def test_the_wall_clock_limit() -> None:
    with pytest.raises(BundleRejected) as info:
        verify_archive(b.archive(b.churn_bundle(5)), VerifyLimits(wall_seconds=0.01))
    assert info.value.message == "verification exceeded 0.01 s"


def test_the_memory_limit() -> None:
    with pytest.raises(BundleRejected) as info:
        verify_archive(b.archive(b.churn_bundle(5)), VerifyLimits(memory_mb=40))
    assert info.value.message == "verification exceeded 40 MB"


def test_bundle_verify_refuses_the_segfaulting_text(tmp_path: Path) -> None:
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(c.archive(c.churn_files(c.split_feature_out_of_range())))
    result = CliRunner().invoke(cli, ["bundle", "verify", str(path)])
    assert result.exit_code == 1
    assert "split_feature" in result.output
