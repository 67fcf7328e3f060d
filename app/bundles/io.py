"""Reading and writing bundles as directories or .tar.gz archives, with every hash checked.

A bundle's identity is the sha256 of its manifest.json, which itself lists the sha256 of
every other file: change one byte anywhere and either a file hash or the identity changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.bundles.manifest import Manifest
from app.errors import BundleRejected, FieldProblem, PayloadTooLarge

MANIFEST = "manifest.json"
# Pickle streams start with PROTO (0x80) then a protocol number; we refuse them outright.
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".sav")


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified bundle held in memory: its manifest and the bytes of each file."""

    manifest: Manifest
    manifest_bytes: bytes
    files: dict[str, bytes]

    @property
    def sha256(self) -> str:
        return sha256_hex(self.manifest_bytes)

    @property
    def family(self) -> str:
        return self.manifest.family

    def text(self, name: str) -> str:
        return self.files[name].decode("utf-8")

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])


def _reject(message: str, field: str, problem: str) -> BundleRejected:
    return BundleRejected(message, [FieldProblem(field, problem)])


def parse_bundle(manifest_bytes: bytes, files: dict[str, bytes]) -> Bundle:
    """Check the manifest and every file hash; the bundle's contents are not yet replayed."""
    try:
        raw = json.loads(manifest_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _reject("manifest.json is not valid JSON", MANIFEST, str(exc)) from None
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        details = [
            FieldProblem(
                "manifest." + ".".join(str(p) for p in err["loc"]) if err["loc"] else "manifest",
                err["msg"],
            )
            for err in exc.errors()
        ]
        raise BundleRejected("manifest.json does not follow the bundle format", details) from None
    for name, data in files.items():
        if name.lower().endswith(_PICKLE_SUFFIXES) or (data[:1] == b"\x80" and data[1:2] in
                                                        (b"\x02", b"\x03", b"\x04", b"\x05")):
            raise _reject("pickled content is never accepted", name, "looks like a pickle")
    listed, present = set(manifest.files), set(files)
    if missing := sorted(listed - present):
        raise _reject("the bundle is incomplete", missing[0], "listed in manifest.json but absent")
    if extra := sorted(present - listed):
        raise _reject("the bundle has unlisted files", extra[0], "not listed in manifest.json")
    for name, expected in manifest.files.items():
        actual = sha256_hex(files[name])
        if actual != expected.lower():
            raise _reject(
                f"sha256 mismatch for {name}",
                name,
                f"sha256 is {actual}, manifest.json says {expected}",
            )
    return Bundle(manifest=manifest, manifest_bytes=manifest_bytes, files=dict(files))


def read_dir(path: Path) -> Bundle:
    """A bundle from a directory on disk (hashes checked)."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise _reject(f"{path} has no manifest.json", MANIFEST, "missing")
    files: dict[str, bytes] = {}
    for p in sorted(path.rglob("*")):
        if p.is_symlink():
            raise _reject("links are not allowed in a bundle", str(p.relative_to(path)), "link")
        if p.is_file() and p != mpath:
            files[p.relative_to(path).as_posix()] = p.read_bytes()
    return parse_bundle(mpath.read_bytes(), files)


def read_archive(data: bytes, *, max_bytes: int) -> Bundle:
    """A bundle from .tar.gz bytes; refuses links, odd paths and oversized content."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the bundle is larger than {max_bytes} bytes")
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise _reject("only regular files are allowed in a bundle", name, "not a file")
                if name.startswith("/") or ".." in name.split("/"):
                    raise _reject("unsafe path in the bundle", name, "path leaves the bundle")
                total += member.size
                if total > max_bytes:
                    raise PayloadTooLarge(f"the unpacked bundle exceeds {max_bytes} bytes")
                extracted = tar.extractfile(member)
                files[name] = extracted.read() if extracted else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _reject("the upload is not a .tar.gz bundle", "bundle", str(exc)) from None
    manifest_bytes = files.pop(MANIFEST, None)
    if manifest_bytes is None:
        raise _reject("the archive has no manifest.json", MANIFEST, "missing")
    return parse_bundle(manifest_bytes, files)


def to_archive(bundle: Bundle) -> bytes:
    """The bundle as deterministic .tar.gz bytes (sorted names, zero mtimes)."""
    buf = io.BytesIO()
    entries = {MANIFEST: bundle.manifest_bytes, **bundle.files}
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size = len(entries[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(entries[name]))
    return buf.getvalue()


def write_dir(bundle: Bundle, path: Path) -> None:
    """Write a bundle as a directory (created; existing files overwritten)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, data in {MANIFEST: bundle.manifest_bytes, **bundle.files}.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def build_bundle(manifest_fields: dict[str, Any], files: dict[str, bytes]) -> Bundle:
    """Assemble a bundle from its parts, filling in every file's sha256."""
    fields = dict(manifest_fields)
    fields["files"] = {name: sha256_hex(data) for name, data in sorted(files.items())}
    manifest = Manifest.model_validate(fields)
    manifest_bytes = (
        json.dumps(manifest.model_dump(mode="json", exclude_none=True), indent=1, sort_keys=True)
        + "\n"
    ).encode()
    return parse_bundle(manifest_bytes, files)
