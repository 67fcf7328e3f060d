"""deploy/ parses as Kubernetes manifests whose probes, ports and settings match the app and
the Dockerfile."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import yaml
from fastapi.testclient import TestClient

from app.config import PROJECT_ROOT, Settings
from app.config_reference import env_name
from app.main import create_app

DEPLOY = PROJECT_ROOT / "deploy"
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
ENV_OF = {env_name(f): f for f in Settings.model_fields}


def _manifests() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                assert doc["kind"] not in docs, f"two {doc['kind']} manifests"
                docs[doc["kind"]] = doc
    return docs


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _container() -> dict[str, Any]:
    (container,) = _manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(match)


def test_the_expected_objects_are_there() -> None:
    assert set(_manifests()) == {"Deployment", "Service", "HorizontalPodAutoscaler",
                                 "PodDisruptionBudget"}


def test_ports_match_the_dockerfile_and_the_command() -> None:
    expose = {int(p) for p in re.findall(r"^EXPOSE\s+(\d+)", DOCKERFILE, re.M)}
    (cmd,) = re.findall(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE, re.M)
    image_port = int(_flag(json.loads(cmd), "--port"))
    container = _container()
    assert expose == {image_port} == {_port(container, "http")}
    argv = container["args"]
    assert argv[:2] == ["tierwise", "serve"] and _flag(argv, "--host") == "0.0.0.0"
    assert int(_flag(argv, "--port")) == image_port
    annotations = _manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == image_port


def test_probes_and_scrape_path_are_routes_that_answer() -> None:
    container = _container()
    probes = {kind: container[kind]["httpGet"] for kind in
              ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert {_port(container, p["port"]) for p in probes.values()} == {8000}
    scrape = _manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    paths = [p["path"] for p in probes.values()] + [scrape["prometheus.io/path"]]
    loading = SimpleNamespace(ready=False)
    app = create_app(Settings(auth_enabled=False), live=loading)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503  # not ready while loading
        loading.ready = True
        for path in paths:
            assert client.get(path).status_code == 200, path


def test_service_hpa_and_budget_point_at_the_deployment() -> None:
    m = _manifests()
    deployment = m["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service = m["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    (port,) = service["ports"]
    assert _port(_container(), port["targetPort"]) == 8000
    target = m["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    hpa = m["HorizontalPodAutoscaler"]["spec"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert m["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "cpu" in _container()["resources"]["requests"]  # the HPA's utilisation needs it


def test_settings_are_valid_and_the_database_url_comes_from_a_secret() -> None:
    container = _container()
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= set(ENV_OF), f"unknown settings: {set(env) - set(ENV_OF)}"
    secret = env["TIERWISE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "tierwise-db", "key": "database-url"}
    values = {ENV_OF[n]: e["value"] for n, e in env.items() if "value" in e}
    settings = Settings(**values)  # type: ignore[arg-type]
    pod = _manifests()["Deployment"]["spec"]["template"]["spec"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pre_stop + settings.graceful_timeout_seconds < pod["terminationGracePeriodSeconds"]
