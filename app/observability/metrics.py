"""The Prometheus metrics of a replica, and the cheap ways the request path feeds them.

Works in prometheus_client's multi-process mode too: `tierwise serve --workers N` sets
PROMETHEUS_MULTIPROC_DIR before the workers import this module, each worker writes its own
files and /metrics (app/observability/exposition.py) sums them.

Cost on the scoring path: a Prometheus increment takes about a microsecond (twice that in
multi-process mode), and one customer yields about fifteen outcomes to count (a band, the
actions shown, the actions suppressed, five model versions). So outcomes are tallied in
plain dicts (a ScoreTally, one per data plane) and added to the counters once a second and
before every scrape; per request only the HTTP counter and histogram are touched directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # no *_created series: they double the series count for little

HTTP_REQUESTS = Counter(
    "tierwise_http_requests",
    "HTTP requests answered, by route template (unmatched for unknown paths), method, status.",
    ("route", "method", "status"),
)
HTTP_DURATION = Histogram(
    "tierwise_http_request_duration_seconds",
    "Time from receiving a request to the end of its response, by route template and method.",
    ("route", "method"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
             30.0),
)
SCORES = Counter(
    "tierwise_scores",
    "Customers scored, by model family and the version that answered (a response's models).",
    ("family", "version"),
)
RECOMMENDATIONS = Counter(
    "tierwise_recommendations",
    "Actions recommended to customers (returned in recommendations), by action.",
    ("action_id",),
)
SUPPRESSED = Counter(
    "tierwise_suppressed",
    "Catalogue actions not recommended, by action and the first rule they failed "
    "(ranked_below_top_n when eligible but outranked); counted whether or not returned.",
    ("action_id", "reason_code"),
)
CHURN_BANDS = Counter(
    "tierwise_churn_band",
    "Customers scored for churn, by the policy's churn band.",
    ("band",),
)
CONTACT_HISTORY = Counter(
    "tierwise_contact_history",
    "Customers sent without a contact history whose recorded outcomes were read (recorded) "
    "or could not be, the registry database being unreachable (unavailable); only with "
    "TIERWISE_CONTACT_HISTORY_FROM_OUTCOMES.",
    ("source",),
)
REGISTRY_EVENTS = Counter(
    "tierwise_registry_events",
    "Registry events in this replica, per family: load (first context), swap, swap_failed "
    "(a version refused), challenger_swap, challenger_failed, challenger_unapproved (a "
    "challenger alias on a version not approved: not loaded).",
    ("event", "family"),
)
MODEL_INFO = Gauge(
    "tierwise_model_info",
    "1 for each production version live in this replica; 0 for versions it served earlier.",
    ("family", "version", "sha256"),
    multiprocess_mode="livemax",
)
EVALUATOR_INFO = Gauge(
    "tierwise_evaluator_info",
    "1 for the evaluator serving production in this replica: treewalk (the native walker, isa "
    "avx512, avx2 or walk) or lightgbm (plain Booster.predict, isa none); 0 for an earlier one.",
    ("evaluator", "isa"),
    multiprocess_mode="livemax",
)
REGISTRY_UP = Gauge(
    "tierwise_registry_up",
    "1 while this replica reaches the registry database, 0 during an outage (scoring goes "
    "on from the live context; registry routes answer 503).",
    multiprocess_mode="livemin",
)

FLUSH_SECONDS = 1.0
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration (labels bound once per combination)."""
    if method not in _METHODS:  # the method comes from the client: bound the label values
        method = "OTHER"
    key = (route, method, status)
    children = _http_children.get(key)
    if children is None:
        children = _http_children.setdefault(key, (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_DURATION.labels(route, method),
        ))
    children[0].inc()
    children[1].observe(seconds)


class ScoreTally:
    """Scoring outcomes counted in plain dicts; flush() adds them to the Prometheus counters.

    One per data plane: the event loop (single customers) and batch threads (batches, pinned
    scores) add to it, the metrics refresh flushes it (once a second and before a scrape).
    """

    __slots__ = ("_lock", "bands", "contexts", "flushed_at", "recommended", "suppressed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(models) → [models, customers]: holding the reference keeps the id from reuse
        self.contexts: dict[int, list[Any]] = {}
        self.recommended: dict[str, int] = {}
        self.suppressed: dict[tuple[str, str], int] = {}
        self.bands: dict[str, int] = {}
        self.flushed_at = time.monotonic()

    def add(self, models: Mapping[str, Any], results: Iterable[Mapping[str, Any]]) -> None:
        """Count results scored on the context serving `models` (a response's models)."""
        with self._lock:
            self._add(models, results)

    def _add(self, models: Mapping[str, Any], results: Iterable[Mapping[str, Any]]) -> None:
        n = 0
        recommended, suppressed, bands = self.recommended, self.suppressed, self.bands
        for result in results:
            if "error" in result:  # a batch item that was refused
                continue
            n += 1
            churn = result.get("churn")
            if churn is not None:
                band = churn["band"]
                bands[band] = bands.get(band, 0) + 1
            for rec in result.get("recommendations", ()):
                action = rec["action_id"]
                recommended[action] = recommended.get(action, 0) + 1
            for sup in result.get("suppressed", ()):
                key = (sup["action_id"], sup["reason_code"])
                suppressed[key] = suppressed.get(key, 0) + 1
        entry = self.contexts.get(id(models))
        if entry is None:
            self.contexts[id(models)] = [models, n]
        else:
            entry[1] += n

    def flush(self) -> None:
        """Add what was counted to the counters and start again from zero."""
        with self._lock:
            contexts, self.contexts = self.contexts, {}
            recommended, self.recommended = self.recommended, {}
            suppressed, self.suppressed = self.suppressed, {}
            bands, self.bands = self.bands, {}
            self.flushed_at = time.monotonic()
        for models, n in contexts.values():
            if n:
                for family, served in models.items():
                    SCORES.labels(family, str(served["version"])).inc(n)
        for action, n in recommended.items():
            RECOMMENDATIONS.labels(action).inc(n)
        for (action, reason), n in suppressed.items():
            SUPPRESSED.labels(action, reason).inc(n)
        for band, n in bands.items():
            CHURN_BANDS.labels(band).inc(n)


def count_contact_history(source: str, customers: int) -> None:
    """Count customers whose contact history was read from outcomes (or could not be)."""
    CONTACT_HISTORY.labels(source).inc(customers)


def count_registry_event(event: str, family: str, version: int) -> None:
    """A LiveScoring swap listener: load, swap, swap_failed, challenger_swap, challenger_failed,
    challenger_unapproved."""
    REGISTRY_EVENTS.labels(event, family).inc()


_model_info: dict[str, tuple[str, str]] = {}
_model_info_lock = threading.Lock()


def sync_model_info(models: Mapping[str, Any] | None) -> None:
    """Mark the production `models` ({family: {"version", "sha256"}}) live with 1, and the
    versions they replaced with 0."""
    if models is None:
        return
    with _model_info_lock:
        for family, served in models.items():
            now = (str(served["version"]), served["sha256"])
            before = _model_info.get(family)
            if before == now:
                continue
            if before is not None:
                MODEL_INFO.labels(family, *before).set(0)
            MODEL_INFO.labels(family, *now).set(1)
            _model_info[family] = now


_evaluator_info: list[tuple[str, str]] = []


def sync_evaluator_info(evaluator: str, isa: str) -> None:
    """Mark the evaluator serving production (and its kernels) with 1, an earlier one with 0."""
    with _model_info_lock:
        now = (evaluator, isa)
        if _evaluator_info and _evaluator_info[0] == now:
            return
        if _evaluator_info:
            EVALUATOR_INFO.labels(*_evaluator_info[0]).set(0)
        EVALUATOR_INFO.labels(*now).set(1)
        _evaluator_info[:] = [now]
