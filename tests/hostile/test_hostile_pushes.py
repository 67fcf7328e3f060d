"""Every hostile bundle pushed over real HTTP to a running server: refused with a 4xx in the
error shape naming the check, the server's process unchanged and still scoring, the registry
database unchanged. The two model texts that crash LightGBM itself are shown to crash it,
in a child process, so the corpus keeps testing what it claims to."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.hostile import corpus as c
from tests.ops.serving import Service, running
from tests.registry import bundles as b

CORPUS = c.corpus()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running(tmp_path_factory.mktemp("hostile")) as svc:
        yield svc


def _rows(service: Service) -> dict[str, list[tuple[object, ...]]]:
    db = Path(service.log).parent / "registry.sqlite3"
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)
                for t in tables}


@pytest.mark.parametrize(("name", "family", "body", "words"), CORPUS,
                         ids=[entry[0] for entry in CORPUS])
def test_a_hostile_push_is_refused(service: Service, name: str, family: str, body: bytes,
                                   words: str) -> None:
    before, pid = _rows(service), service.process.pid
    with httpx.Client(base_url=service.url, timeout=120) as http:
        r = http.post(f"/v1/models/{family}/versions", content=body,
                      headers={"Content-Type": "application/gzip"})
        assert 400 <= r.status_code < 500, r.text
        error = r.json()["error"]
        assert set(error) == {"code", "message", "details"}
        assert words.lower() in (error["message"] + repr(error["details"])).lower(), error
        scored = http.post("/v1/score", json={"customer_id": "after-" + name,
                                              "features": b.example_features()})
        assert scored.status_code == 200, scored.text
    assert service.process.poll() is None and service.process.pid == pid
    assert len({rec["pid"] for rec in service.records()}) == 1  # the worker never restarted
    assert _rows(service) == before


CRASH = """
import sys, lightgbm as lgb, numpy as np
text = sys.stdin.read()
booster = lgb.Booster(model_str=text)
booster.predict(np.zeros((2, booster.num_feature())))
"""


@pytest.mark.parametrize(("text", "signal_name"), [
    (c.num_leaves_off_by_one, "SIGABRT"), (c.split_feature_out_of_range, "SIGSEGV")])
def test_the_model_texts_do_crash_lightgbm_itself(text: Callable[[], str],
                                                  signal_name: str) -> None:
    import signal

    done = subprocess.run([sys.executable, "-c", CRASH], input=text().encode(),
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == -getattr(signal, signal_name), done.stderr[-500:]
