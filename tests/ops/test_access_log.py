"""One log line per request, and no query string in any line, however the service is run:
`tierwise serve` with one or two workers, and plain `uvicorn app.main:create_app --factory`
(whose default logging would add uvicorn's access line, with the client's address and the
raw query string)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.ops.serving import running
from tests.registry import bundles as b

pytestmark = pytest.mark.slow
SECRET = "secret123"


@pytest.mark.parametrize(("kind", "workers"), [("tierwise", 1), ("tierwise", 2),
                                               ("uvicorn", 1), ("uvicorn", 2)])
def test_one_line_per_request_and_no_query_string(tmp_path: Path, kind: str,
                                                  workers: int) -> None:
    sent: list[str] = []
    with running(tmp_path, kind=kind, workers=workers, TIERWISE_LOG_LEVEL="DEBUG") as service:
        customer = {"customer_id": "c1", "features": b.example_features()}
        for round_ in range(40):  # fresh connections, until every worker has answered
            with httpx.Client(base_url=service.url, timeout=30) as client:
                for path in ("/v1/models", "/healthz", "/v1/models/churn/versions/1",
                             "/no/such/path"):
                    rid = f"q{round_}-{len(sent)}"
                    client.get(f"{path}?apikey={SECRET}&x=1", headers={"X-Request-ID": rid})
                    sent.append(rid)
                rid = f"q{round_}-{len(sent)}"
                scored = client.post(f"/v1/score?apikey={SECRET}", json=customer,
                                     headers={"X-Request-ID": rid})
                assert scored.status_code == 200, scored.text
                sent.append(rid)
            pids = {r["pid"] for r in service.records() if r["logger"] == "tierwise.requests"}
            if len(pids) == workers:
                break
        else:
            pytest.fail("not every worker answered")
    output = service.output()  # the server has stopped: everything it wrote is here
    assert SECRET not in output
    records = service.records()
    assert not [r for r in records if r["logger"] == "uvicorn.access"]
    lines = [r for r in records if r["logger"] == "tierwise.requests"]
    assert Counter(r["request_id"] for r in lines) == Counter(sent)  # one line each
    assert {r["route"] for r in lines} == {
        "/v1/models", "/healthz", "/v1/models/{family}/versions/{version}", "unmatched",
        "/v1/score"}
    assert not [line for line in output.splitlines() if "/no/such/path" in line]
