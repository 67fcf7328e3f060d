"""Domain errors: each carries an HTTP status and a stable, machine-readable code.

One handler (app/api/handlers.py) renders every one of them into the same JSON shape:
{"error": {"code": ..., "message": ..., "details": [{"field": ..., "problem": ...}]}}
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """What is wrong with one field of a request, named by its path."""

    field: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


@dataclass
class TierwiseError(Exception):
    """Base of every error the service reports to a caller."""

    message: str
    details: list[FieldProblem] = field(default_factory=list)
    status = 500
    code = "internal_error"

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "details": [d.as_dict() for d in self.details],
        }


class InvalidRequest(TierwiseError):
    status = 422
    code = "invalid_request"


class InvalidFeature(TierwiseError):
    status = 422
    code = "invalid_feature"


class PayloadTooLarge(TierwiseError):
    status = 413
    code = "payload_too_large"


class NotFound(TierwiseError):
    status = 404
    code = "not_found"


class Conflict(TierwiseError):
    status = 409
    code = "conflict"


class BreakingContract(Conflict):
    """A feature contract change that may refuse requests valid today, promoted without
    allow_breaking."""

    code = "breaking_contract"


class Unauthorized(TierwiseError):
    status = 401
    code = "unauthorized"


class Forbidden(TierwiseError):
    status = 403
    code = "forbidden"


class BundleRejected(TierwiseError):
    """A model bundle failed a check (hash, manifest, reference rows, format)."""

    status = 422
    code = "bundle_rejected"


class NotReady(TierwiseError):
    status = 503
    code = "not_ready"


class RegistryUnavailable(TierwiseError):
    """The registry database cannot be reached: retry later (scoring from the live context
    goes on; only what needs the database answers this)."""

    status = 503
    code = "registry_unavailable"


class MalformedJson(TierwiseError):
    """The body is not JSON at all (a 422 is for JSON that breaks the contract)."""

    status = 400
    code = "invalid_json"


class MethodNotAllowed(TierwiseError):
    status = 405
    code = "method_not_allowed"


class UnsupportedMediaType(TierwiseError):
    status = 415
    code = "unsupported_media_type"
