"""A small HTTP client for the registry API (used by the `tierwise` registry commands)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx


class RegistryClientError(Exception):
    """The server refused a call; carries its status and error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.error = body.get("error", {}) if isinstance(body, dict) else {}
        code, message = self.error.get("code", ""), self.error.get("message", body)
        super().__init__(f"{status} {code}: {message}")

    def describe(self) -> str:
        """The error and each detail on its own line."""
        lines = [f"error {self.status} {self.error.get('code', '')}: "
                 f"{self.error.get('message', '')}"]
        lines += [f"  {d.get('field')}: {d.get('problem')}" for d in self.error.get("details", [])]
        return "\n".join(lines)


class RegistryClient:
    """Calls to one tierwise server with one API key."""

    def __init__(self, url: str, key: str | None, *, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"X-API-Key": key} if key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return _checked(self._http.request(method, path, **kwargs)).json()

    def push(self, family: str, archive: bytes,
             check_with: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Publish a bundle archive; returns the new version."""
        params = [("check_with", f"{f}={v}") for f, v in (check_with or {}).items()]
        return self._call("POST", f"/v1/models/{family}/versions", content=archive,
                          params=params, headers={"Content-Type": "application/gzip"})

    def models(self) -> dict[str, Any]:
        return self._call("GET", "/v1/models")

    def versions(self, family: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/models/{family}/versions")

    def show(self, family: str, version: int) -> dict[str, Any]:
        return self._call("GET", f"/v1/models/{family}/versions/{version}")

    def bundle(self, family: str, version: int) -> tuple[bytes, str]:
        """A version's bundle archive and the sha256 the registry records for it."""
        response = _checked(
            self._http.get(f"/v1/models/{family}/versions/{version}/bundle"))
        return response.content, response.headers.get("X-Bundle-Sha256", "")

    def approve(self, family: str, version: int, note: str = "") -> dict[str, Any]:
        return self._call("POST", f"/v1/models/{family}/versions/{version}/approve",
                          json={"note": note})

    def move(self, moves: Sequence[tuple[str, str, int | None]], note: str = "", *,
             allow_breaking: bool = False) -> dict[str, Any]:
        """Move aliases atomically: (family, alias, version) triples; `allow_breaking` lets
        a features move break what callers send today."""
        body = {"moves": [{"family": f, "alias": a, "version": v,
                           **({"allow_breaking": True} if allow_breaking and f == "features"
                              else {})}
                          for f, a, v in moves],
                "note": note}
        return self._call("POST", "/v1/models/aliases", json=body)

    def rollback(self, family: str, note: str = "") -> dict[str, Any]:
        return self._call("POST", f"/v1/models/{family}/rollback", json={"note": note})

    def history(self, family: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/models/{family}/history")

    def ledger(self, *, after_id: int = 0, limit: int = 100) -> dict[str, Any]:
        return self._call("GET", "/v1/ledger", params={"after_id": after_id, "limit": limit})

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")

    def monitoring(self, part: str, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /v1/monitoring/<part> (drift, calibration, actions, alerts)."""
        return self._call("GET", f"/v1/monitoring/{part}", params=dict(params))


def _checked(response: httpx.Response) -> httpx.Response:
    """`response`, or RegistryClientError carrying the server's error body."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"code": "http_error", "message": response.text[:500]}}
        raise RegistryClientError(response.status_code, body)
    return response
