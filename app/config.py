"""Settings, read once from TIERWISE_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
# The checkout (the directory that holds app/, models/, migrations/); tests and docs use it.
PROJECT_ROOT = PACKAGE_DIR.parent
# An installed wheel carries models/ and migrations/ inside the package (pyproject.toml's
# force-include): use them there, else the checkout's top-level directories.
DATA_ROOT = PACKAGE_DIR / "_data" if (PACKAGE_DIR / "_data").is_dir() else PROJECT_ROOT
# Files the service writes (embedded registry, admin key, compile cache) go under var/ in the
# working directory, which is writable wherever the service runs (the checkout for `make run`,
# /srv/tierwise in the container image), never into an installed package.
VAR_DIR = Path("var")
# The roles an OIDC claim may map to (app/registry/tables.py ROLES; config sits below it).
OidcRole = Literal["scorer", "publisher", "approver", "admin"]
# A web origin as browsers send it in Origin: scheme, host and optional port, nothing else
# (it goes into CSP and CORS headers, so no spaces, quotes, semicolons or paths).
WebOrigin = Annotated[str, StringConstraints(
    pattern=r"^https?://(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
            r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?::[0-9]{1,5})?$",
    max_length=253)]


class Settings(BaseSettings):
    """Every operator-facing setting; docs/configuration.md lists them all (generated from
    these fields by `tierwise config --markdown`, so each needs a description)."""

    model_config = SettingsConfigDict(env_prefix="TIERWISE_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR / 'registry.sqlite3'}",
        description="SQLAlchemy URL of the model registry (sqlite:///… or postgresql+psycopg://…); "
        "the default is an SQLite file under var/ in the working directory.",
    )
    models_dir: Path = Field(
        default=DATA_ROOT / "models",
        description="Default bundles used to seed an empty registry (default: the models/ "
        "shipped with tierwise).",
    )
    auto_migrate: bool = Field(
        default=True, description="Apply Alembic migrations at start-up."
    )
    seed_registry: bool = Field(
        default=True,
        description="On first start, publish the bundles in models_dir and mark them production.",
    )
    auth_enabled: bool = Field(default=True, description="Require an API key on /v1 routes.")
    bootstrap_admin_key_file: Path = Field(
        default=VAR_DIR / "admin.key",
        description="Where the first start writes a locally generated admin key (a relative "
        "path is from the working directory).",
    )
    poll_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often a replica checks the registry's aliases "
        "(on PostgreSQL also at once when a move is notified).",
    )
    registry_notify: bool = Field(
        default=True,
        description="On PostgreSQL, listen for alias moves (LISTEN/NOTIFY) so replicas swap "
        "as soon as a move commits; polling stays as the fallback. No effect on SQLite.",
    )
    recent_contexts: int = Field(
        default=4, ge=0,
        description="Scoring contexts a replica keeps, the live one among them, each with "
        "its evaluator, so moving an alias back to their versions needs no rebuild.",
    )
    key_grace_seconds: float = Field(
        default=300.0, ge=0,
        description="While the registry database cannot be reached, an API key verified "
        "within this many seconds stays valid (scoring goes on); other keys answer 503 "
        "registry_unavailable. Revocations apply at the first lookup after reconnecting.",
    )
    registry_log_interval_seconds: float = Field(
        default=30.0, gt=0,
        description="During a registry database outage, at most one log line per this many "
        "seconds (with the number of failed attempts since the previous one).",
    )
    max_batch_items: int = Field(
        default=10_000, gt=0, description="Largest number of customers in one batch call."
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest request body accepted (413 above)."
    )
    max_bundle_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest model bundle accepted on upload."
    )
    verify_memory_mb: int = Field(
        default=2048, ge=256,
        description="Address space (RLIMIT_AS) of the child process that verifies a pushed bundle.",
    )
    verify_cpu_seconds: int = Field(
        default=60, gt=0, description="CPU seconds (RLIMIT_CPU) of one bundle verification.",
    )
    verify_wall_seconds: float = Field(
        default=120.0, gt=0, description="Wall-clock time of one bundle verification.",
    )
    verify_open_files: int = Field(
        default=64, ge=16, description="Open files (RLIMIT_NOFILE) of one bundle verification.",
    )
    verify_file_size_mb: int = Field(
        default=1, ge=0,
        description="Largest file (RLIMIT_FSIZE) one bundle verification may write.",
    )
    verify_require_network_isolation: bool = Field(
        default=False,
        description="Refuse pushes (503 verification_isolation_unavailable) when the "
        "verification child cannot be put in its own network namespace (Linux user "
        "namespaces, or root with CAP_SYS_ADMIN); false: verify without it, as /v1/status "
        "verify_network_isolated and a start-up warning say.",
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024,
        description="Largest request head accepted: the request line and every header name "
        "and value together (431 above).",
    )
    body_timeout_seconds: float = Field(
        default=60.0, gt=0,
        description="Time a client has to send the whole request body once its head has "
        "arrived (408 and the connection closed after it).",
    )
    keep_alive_timeout_seconds: int = Field(
        default=5, ge=1,
        description="How long an idle keep-alive connection stays open after a response "
        "before the server closes it.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="Level of the JSON logs on stderr; INFO writes one line per request, "
        "WARNING and above leave those out.",
    )
    graceful_timeout_seconds: float = Field(
        default=30.0, gt=0,
        description="On SIGTERM, how long in-flight requests may take to finish before the "
        "server cancels them (keep the orchestrator's grace period longer).",
    )
    microbatch: bool = Field(
        default=True,
        description="Score single-customer requests that are ready at the same moment together "
        "(one vectorised call; the same results as one by one).",
    )
    compile_models: bool = Field(
        default=True,
        description="Compile tree ensembles to native code in the background when available.",
    )
    compile_cache_dir: Path = Field(
        default=VAR_DIR / "compiled",
        description="Cache of compiled models, keyed by sha256 (a relative path is from the "
        "working directory).",
    )

    decision_ids: bool = Field(
        default=True,
        description="Give every recommendation a decision id (a signed token outcomes are "
        "posted with); false leaves them out of responses.",
    )
    decision_secret: str | None = Field(
        default=None, min_length=16,
        description="Secret decision ids are signed with (at least 16 characters, the same "
        "on every replica); unset: a random secret made at first start and kept in the "
        "registry database.",
    )
    outcomes_retention_days: int = Field(
        default=730, ge=1, le=36500,
        description="Outcomes that occurred more than this many days ago are deleted (at "
        "most once an hour, when outcomes are posted) and refused when posted.",
    )
    outcomes_max_per_request: int = Field(
        default=1000, ge=1, le=100_000,
        description="Most outcomes in one POST /v1/outcomes (422 above).",
    )
    outcomes_max_rows: int = Field(
        default=50_000_000, ge=1,
        description="Most outcome rows kept; a post that would pass it is refused whole "
        "(507 outcomes_full) until retention frees room or the limit is raised.",
    )
    contact_history_from_outcomes: bool = Field(
        default=False,
        description="When a scoring request sends no context.history, the contact policy "
        "reads the customer's recorded outcomes instead (one bounded query; scoring goes on "
        "without them while the database is unreachable).",
    )

    oidc_issuer: str | None = Field(
        default=None,
        description="Issuer (`iss`) of the OIDC access tokens accepted as `Authorization: "
        "Bearer <jwt>` beside API keys; unset turns OIDC off. Tokens must be signed RS256 or "
        "ES256 by a key of TIERWISE_OIDC_JWKS.",
    )
    oidc_audience: str | None = Field(
        default=None,
        description="Audience (`aud`) a token must name; required with TIERWISE_OIDC_ISSUER.",
    )
    oidc_jwks: str | None = Field(
        default=None,
        description="The issuer's signing keys (a JWKS): a file path or an http(s) URL; "
        "required with TIERWISE_OIDC_ISSUER.",
    )
    oidc_jwks_ttl_seconds: float = Field(
        default=300.0, gt=0,
        description="How long the JWKS is kept before it is read again (an unknown `kid` "
        "reads it again at most every 30 s, for key rotation).",
    )
    oidc_role_claim: str = Field(
        default="roles",
        description="The claim whose values map to tierwise roles (a string or a list; a "
        "dotted path such as `realm_access.roles` reads a nested claim).",
    )
    oidc_role_map: dict[str, OidcRole] = Field(
        default_factory=dict,
        description="JSON object mapping role-claim values to tierwise roles, e.g. "
        "`{\"risk-approvers\": \"approver\"}`; a token gets the highest role mapped "
        "(scorer < publisher < approver < admin), none mapped is 403.",
    )
    oidc_leeway_seconds: float = Field(
        default=30.0, ge=0, le=300,
        description="Clock skew allowed when checking a token's `exp`, `nbf` and `iat`.",
    )
    monitoring: bool = Field(
        default=True, description="Count what this replica scores (per-feature bins against "
        "each bundle's training reference, score histogram; no raw features) and flush the "
        "counts to the registry database (docs/monitoring.md).",
    )
    monitoring_flush_seconds: float = Field(
        default=60.0, gt=0, le=86_400,
        description="How often a replica writes its cumulative monitoring counts to the "
        "registry database (and at shutdown).",
    )
    monitoring_report_seconds: float = Field(
        default=300.0, gt=0, le=86_400,
        description="How often a replica recomputes the monitoring report over the window "
        "for /v1/status alerts and the monitoring gauges (at its first flush, then at the "
        "first flush after this many seconds); it reads the window's outcome rows.",
    )
    monitoring_window_days: int = Field(
        default=30, ge=1, le=3650,
        description="Days of counts and outcomes that /v1/monitoring, the metrics' gauges, "
        "alerts and `tierwise report` read by default.",
    )
    monitoring_retention_days: int = Field(
        default=400, ge=1, le=36_500,
        description="Monitoring counts older than this many days are deleted at flush.",
    )
    alert_psi: float = Field(
        default=0.25, gt=0,
        description="Alert when a feature's (or the score's) PSI against the training "
        "reference exceeds this (0.1-0.25 is usually read as a moderate shift, above 0.25 "
        "as a major one).",
    )
    alert_psi_min_rows: int = Field(
        default=500, ge=1,
        description="Drift alerts need at least this many customers scored by the version.",
    )
    alert_calibration_margin: float = Field(
        default=0.02, ge=0, le=1,
        description="Alert when the churn model's observed expected calibration error (from "
        "outcomes 'churned') exceeds the bundle's held-out ECE by more than this.",
    )
    alert_calibration_min_count: int = Field(
        default=500, ge=1,
        description="Calibration alerts need at least this many customers with a churn "
        "probability and recorded outcomes.",
    )

    ui_enabled: bool = Field(
        default=True,
        description="Serve the web pages under /ui/ (customer card, demo, registry console); "
        "false answers 404 there. /docs and /redoc stay.",
    )
    ui_frame_ancestors: list[WebOrigin] = Field(
        default_factory=list,
        description="JSON list of origins (`[\"https://crm.bank.example\"]`) whose pages may "
        "show /ui/ pages in a frame, besides tierwise's own (CSP frame-ancestors); empty: "
        "only tierwise's own, and X-Frame-Options: SAMEORIGIN is sent too.",
    )
    ui_cors_origins: list[WebOrigin] = Field(
        default_factory=list,
        description="JSON list of origins whose pages may call /v1/score and /v1/outcomes "
        "and load /ui/tierwise-card.js from the browser (CORS); empty: CORS off.",
    )

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer:
            missing = [n for n in ("oidc_audience", "oidc_jwks") if not getattr(self, n)]
            if missing:
                raise ValueError("TIERWISE_OIDC_ISSUER is set, so "
                                 + " and ".join(f"TIERWISE_{n.upper()}" for n in missing)
                                 + " must be set too")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache)."""
    return Settings()
