"""Model bundles: manifest.json + LightGBM text files, hash-checked and replayed on load."""

from app.bundles.io import Bundle, build_bundle, read_archive, read_dir, to_archive, write_dir
from app.bundles.manifest import FAMILIES, MODEL_FAMILIES, Manifest

__all__ = [
    "FAMILIES",
    "MODEL_FAMILIES",
    "Bundle",
    "Manifest",
    "build_bundle",
    "read_archive",
    "read_dir",
    "to_archive",
    "write_dir",
]
