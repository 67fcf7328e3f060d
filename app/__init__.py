"""tierwise: wallet tier, calibrated churn and next-best-product scoring for retail banks."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source of truth: pyproject.toml's version, as installed (wheel or editable).
    __version__ = version("tierwise")
except PackageNotFoundError:  # pragma: no cover - sources on sys.path without an install
    __version__ = "0+unknown"
