"""Reading and writing bundles as directories or .tar.gz archives, with every hash checked.

A bundle's identity is the sha256 of its manifest.json, which itself lists the sha256 of
every other file: change one byte anywhere and either a file hash or the identity changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.bundles.manifest import Manifest
from app.errors import BundleRejected, FieldProblem, PayloadTooLarge

MANIFEST = "manifest.json"
# Pickle streams start with PROTO (0x80) then a protocol number; we refuse them outright.
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".sav")
# A protocol 0/1 (text) pickle starts with one of these opcodes and ends with STOP (".").
_PICKLE_TEXT_START = frozenset(b"(cdlSIFLNVTUgp}])")
# Limits on an archive, counted before anything is read into memory: members, each name,
# each metadata record (pax header, GNU long name), nesting of every JSON file.
MAX_MEMBERS = 256
MAX_NAME_BYTES = 200
MAX_META_BYTES = 8 * 1024
MAX_JSON_DEPTH = 64
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


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


def json_depth(data: bytes) -> int:
    """How deeply a JSON text nests arrays and objects (strings skipped), without parsing it."""
    depth = deepest = 0
    for c in _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS):
        depth += 1 if c in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def load_json(data: bytes, name: str) -> Any:
    """Parse one JSON file of a bundle, its nesting bounded (a deep one is a refusal, not a
    RecursionError); BundleRejected naming the file otherwise."""
    if json_depth(data) > MAX_JSON_DEPTH:
        raise _reject(f"{name} nests deeper than {MAX_JSON_DEPTH} levels", name, "JSON depth")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _reject(f"{name} is not valid JSON", name, str(exc)) from None


def _pickled(name: str, data: bytes) -> bool:
    if name.lower().endswith(_PICKLE_SUFFIXES):
        return True
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return True
    return data[:1] != b"" and data[0] in _PICKLE_TEXT_START and data.rstrip()[-1:] == b"."


def _check_kinds(manifest: Manifest, files: dict[str, bytes]) -> None:
    """Only the kinds the format defines: JSON files, and LightGBM texts its models name."""
    model_files = set(manifest.models.values())
    for name, data in files.items():
        if name.endswith(".json"):
            load_json(data, name)
        elif name not in model_files or not name.endswith(".txt"):
            raise _reject("only JSON files and the manifest's LightGBM model texts are allowed",
                          name, "file kind not allowed (not .json, not a model .txt)")
        elif not data.startswith(b"tree\nversion="):
            raise _reject(f"{name} is not a LightGBM model text", name,
                          "does not start with tree/version=")


def parse_bundle(manifest_bytes: bytes, files: dict[str, bytes]) -> Bundle:
    """Check the manifest and every file hash; the bundle's contents are not yet replayed."""
    raw = load_json(manifest_bytes, MANIFEST)
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
    for name, data in {MANIFEST: manifest_bytes, **files}.items():
        if _pickled(name, data):
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
    _check_kinds(manifest, files)
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


def _gunzip(data: bytes, limit: int) -> bytes:
    """The tar stream inside gzip bytes, refused beyond `limit` bytes before it is all made."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflate.decompress(data, limit + 1)
    except zlib.error as exc:
        raise _reject("the upload is not a .tar.gz bundle", "bundle", str(exc)) from None
    if len(out) > limit:
        raise PayloadTooLarge(f"the unpacked bundle exceeds {limit} bytes")
    return out


def _octal(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # base-256: never needed for a bundle's sizes
        raise ValueError("base-256 number")
    text = field.rstrip(b"\0 ").strip() or b"0"
    return int(text, 8)


_FILE, _DIR, _META = frozenset(b"0\0"), frozenset(b"5"), frozenset(b"xL")
_KINDS = {ord("1"): "hard link", ord("2"): "symbolic link", ord("3"): "character device",
          ord("4"): "block device", ord("6"): "fifo", ord("g"): "global pax header",
          ord("K"): "long link name"}


def _scan(tar: bytes) -> None:
    """Walk the tar headers ourselves before tarfile does: count members, refuse any kind but
    files and directories, and bound every metadata record (tarfile would read a pax header
    or GNU long name of any size into memory)."""
    pos = members = 0
    while pos + 512 <= len(tar):
        block = tar[pos:pos + 512]
        if block == bytes(512):
            return
        try:
            size = _octal(block[124:136])
        except ValueError:
            raise _reject("the upload is not a .tar.gz bundle", "bundle",
                          f"bad size field at offset {pos}") from None
        kind, name = block[156], block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        if kind in _META:
            if size > MAX_META_BYTES:
                raise _reject("a metadata record in the archive is too large", name or "bundle",
                              f"{size} bytes of pax header or long name, limit "
                              f"{MAX_META_BYTES}")
        elif kind in _FILE or kind in _DIR:
            members += 1
            if members > MAX_MEMBERS:
                raise _reject("the archive has too many members", "bundle",
                              f"more than {MAX_MEMBERS}")
        else:
            raise _reject("only regular files are allowed in a bundle", name,
                          _KINDS.get(kind, f"tar member type {chr(kind)!r}"))
        pos += 512 + (size + 511) // 512 * 512


def read_archive(data: bytes, *, max_bytes: int) -> Bundle:
    """A bundle from .tar.gz bytes; refuses links, odd paths and oversized content."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the bundle is larger than {max_bytes} bytes")
    tar_bytes = _gunzip(data, max_bytes)
    _scan(tar_bytes)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise _reject("only regular files are allowed in a bundle", name, "not a file")
                if len(name.encode()) > MAX_NAME_BYTES:
                    raise _reject("a member name is too long", name[:80] + "…",
                                  f"over {MAX_NAME_BYTES} bytes")
                if name.startswith("/") or ".." in name.split("/"):
                    raise _reject("unsafe path in the bundle", name, "path leaves the bundle")
                if name in files:
                    raise _reject("a member appears twice in the archive", name, "duplicate")
                extracted = tar.extractfile(member)
                files[name] = extracted.read() if extracted else b""
    except (tarfile.TarError, OSError, EOFError, UnicodeError) as exc:
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
