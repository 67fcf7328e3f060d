"""Whole-book fixtures: a small synthetic book on disk and one SparkSession per test session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.training.synth import generate_book, write_book

BOOK_ROWS = 300


@pytest.fixture(scope="session")
def book_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic book of BOOK_ROWS customers (features and the generator's extra columns)."""
    path = tmp_path_factory.mktemp("book") / "book.parquet"
    write_book(generate_book(BOOK_ROWS, 5), path)
    return path


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local[2] SparkSession shared by every Spark test (skipped without pyspark/Java)."""
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed: pip install "
                                  "'tierwise[spark]' (the dev lock has it)")
    from pyspark.sql import SparkSession

    # The executors' Python is this one and sees the same sys.path: set for the JVM's start
    # only (its Python workers inherit its environment), then put back, so that no other
    # test's subprocess sees them.
    saved = {k: os.environ.get(k) for k in ("PYSPARK_PYTHON", "PYTHONPATH")}
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        session = (SparkSession.builder.master("local[2]").appName("tierwise-tests")
                   .config("spark.ui.enabled", "false")
                   .config("spark.sql.shuffle.partitions", "2")
                   .config("spark.driver.memory", "1g")
                   .getOrCreate())
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    session.sparkContext.setLogLevel("ERROR")
    assert pyspark.__version__
    yield session
    session.stop()
