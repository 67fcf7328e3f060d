"""Where the pages' files are: tierwise's own (package data under app/ui/) and the
documentation bundles (Swagger UI and ReDoc) from the `fastapi-offline` package."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

UI_DIR = Path(__file__).resolve().parent
STATIC_DIR = UI_DIR / "static"
PAGES_DIR = UI_DIR / "pages"
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".png": "image/png"}
# fastapi-offline ships Swagger UI 5 and ReDoc 2 as plain files (MIT); only the files are
# used, served by our routes, so no CDN is ever named.
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def docs_asset_dir() -> Path:
    """The directory of the Swagger UI and ReDoc bundles."""
    return Path(str(files("fastapi_offline") / "static"))


# The one URL of another host the bundles load by themselves: ReDoc's sidebar logo. Served
# with the local favicon in its place (ReDoc hides the image when it fails to load, but the
# browser would still try, and report the CSP refusal).
REDOC_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"/ui/vendor/favicon.png")


@cache
def docs_asset(path: Path) -> bytes:
    """A documentation bundle's bytes as served (ReDoc's logo made local)."""
    data = path.read_bytes()
    return data.replace(*REDOC_LOGO) if path.name == "redoc.standalone.js" else data


def static_assets() -> dict[str, Path]:
    """Every file /ui/<name> serves (JavaScript modules and style sheets), by name."""
    return {p.name: p for p in sorted(STATIC_DIR.iterdir()) if p.suffix in MEDIA_TYPES}


def page(name: str) -> bytes:
    """An HTML page of app/ui/pages/."""
    return (PAGES_DIR / f"{name}.html").read_bytes()
