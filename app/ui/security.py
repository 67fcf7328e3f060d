"""The security headers of the pages tierwise serves (CSP, frame options), built once.

/ui/ pages run no inline script and load nothing from another origin, so their policy is
`default-src 'self'`. Who may frame them is a setting (TIERWISE_UI_FRAME_ANCESTORS):
X-Frame-Options can name no origin but the page's own, so it is sent only when no other
origin is configured, and CSP frame-ancestors (which every current browser honours) does
the work otherwise. The documentation pages (Swagger UI, ReDoc) carry FastAPI's inline start
script, allowed by its sha256, and ReDoc's runtime styles and blob: worker.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_COMMON = ("base-uri 'none'", "object-src 'none'", "form-action 'self'")


def frame_ancestors(origins: Sequence[str]) -> str:
    """The CSP frame-ancestors directive: tierwise's own origin and `origins`."""
    return " ".join(("frame-ancestors", "'self'", *origins))


def page_headers(origins: Sequence[str]) -> dict[str, str]:
    """Headers of every /ui/ page and asset."""
    csp = "; ".join(("default-src 'self'", "img-src 'self' data:", *_COMMON,
                     frame_ancestors(origins)))
    return _with_frame_options(csp, origins)


def script_hashes(html: str) -> list[str]:
    """CSP sources allowing exactly the inline scripts of `html`."""
    return ["'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            + "'" for body in _INLINE_SCRIPT.findall(html)]


def docs_headers(origins: Sequence[str], hashes: Iterable[str]) -> dict[str, str]:
    """Headers of /docs and /redoc: their own scripts only, and nothing from elsewhere."""
    csp = "; ".join(("default-src 'self'", " ".join(("script-src 'self'", *hashes)),
                     "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
                     "worker-src 'self' blob:", *_COMMON, frame_ancestors(origins)))
    return _with_frame_options(csp, origins)


def _with_frame_options(csp: str, origins: Sequence[str]) -> dict[str, str]:
    headers = {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer"}
    if not origins:
        headers["X-Frame-Options"] = "SAMEORIGIN"
    return headers
