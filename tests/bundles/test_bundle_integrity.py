"""Tampered bundles are refused, each with a message naming what failed.

Every test works on its own copy of one small churn bundle trained once per module.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from app.bundles.io import Bundle, read_archive, read_dir, sha256_hex, to_archive, write_dir
from app.errors import BundleRejected
from app.scoring.loader import load_family
from app.training.synth import generate_book
from app.training.train import train_churn

MAX = 64 * 1024 * 1024
MODEL = "churn.txt"


@pytest.fixture(scope="module")
def book() -> dict[str, np.ndarray]:
    return generate_book(3_000, seed=21)


@pytest.fixture(scope="module")
def bundle(book) -> Bundle:
    return train_churn(book, 1, rounds=5, created_at="2026-01-01T00:00:00+00:00")


@pytest.fixture()
def bundle_dir(bundle: Bundle, tmp_path: Path) -> Path:
    path = tmp_path / "churn"
    write_dir(bundle, path)
    return path


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _write_manifest(path: Path, manifest: dict) -> None:
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _load(path: Path) -> None:
    load_family(read_dir(path))


def _rejected(path: Path) -> BundleRejected:
    with pytest.raises(BundleRejected) as info:
        _load(path)
    return info.value


def test_the_untouched_copy_loads(bundle_dir: Path, bundle: Bundle):
    assert read_dir(bundle_dir).sha256 == bundle.sha256
    _load(bundle_dir)


def test_one_byte_changed_in_the_model_file(bundle_dir: Path):
    model = bundle_dir / MODEL
    data = bytearray(model.read_bytes())
    i = data.index(b"leaf_value=") + len("leaf_value=")
    data[i] = ord("9") if data[i] != ord("9") else ord("8")
    model.write_bytes(bytes(data))
    err = _rejected(bundle_dir)
    assert err.message == f"sha256 mismatch for {MODEL}"
    assert err.details[0].field == MODEL
    assert "sha256 is" in err.details[0].problem and "manifest.json says" in err.details[0].problem


def test_a_hash_edited_in_the_manifest(bundle_dir: Path):
    manifest = _manifest(bundle_dir)
    manifest["files"][MODEL] = sha256_hex(b"something else")
    _write_manifest(bundle_dir, manifest)
    err = _rejected(bundle_dir)
    assert err.message == f"sha256 mismatch for {MODEL}"
    assert err.details[0].field == MODEL


def test_an_edited_reference_output_fails_the_replay(bundle_dir: Path):
    # The file hashes stay consistent: only replaying the reference rows can notice.
    manifest = _manifest(bundle_dir)
    expected = manifest["reference_rows"][0]["expected"]
    expected["probability"] = min(1.0, expected["probability"] + 0.01)
    _write_manifest(bundle_dir, manifest)
    read_dir(bundle_dir)  # the hash checks pass
    err = _rejected(bundle_dir)
    assert err.message == "the bundle does not reproduce its reference outputs"
    assert err.details[0].field == "reference_rows[0].expected.probability"


def test_a_model_swapped_with_a_consistent_manifest_fails_the_replay(bundle_dir: Path, book):
    other = train_churn(book, 99, rounds=5)
    (bundle_dir / MODEL).write_bytes(other.files[MODEL])
    manifest = _manifest(bundle_dir)
    manifest["files"][MODEL] = sha256_hex(other.files[MODEL])
    _write_manifest(bundle_dir, manifest)
    err = _rejected(bundle_dir)
    assert err.message == "the bundle does not reproduce its reference outputs"
    assert err.details[0].field.startswith("reference_rows[")


def test_a_missing_file(bundle_dir: Path):
    (bundle_dir / MODEL).unlink()
    err = _rejected(bundle_dir)
    assert err.message == "the bundle is incomplete"
    assert err.details[0].field == MODEL


def test_a_missing_manifest(bundle_dir: Path):
    (bundle_dir / "manifest.json").unlink()
    err = _rejected(bundle_dir)
    assert err.details[0].field == "manifest.json"


def test_an_extra_unlisted_file(bundle_dir: Path):
    (bundle_dir / "notes.txt").write_text("hello")
    err = _rejected(bundle_dir)
    assert err.message == "the bundle has unlisted files"
    assert err.details[0].field == "notes.txt"


def test_a_pkl_file(bundle_dir: Path):
    (bundle_dir / "model.pkl").write_bytes(b"not even a pickle")
    err = _rejected(bundle_dir)
    assert err.message == "pickled content is never accepted"
    assert err.details[0].field == "model.pkl"


def test_pickle_bytes_under_an_innocent_name(bundle_dir: Path):
    (bundle_dir / "weights.bin").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    err = _rejected(bundle_dir)
    assert err.message == "pickled content is never accepted"
    assert err.details[0].field == "weights.bin"


def test_a_manifest_that_is_not_json(bundle_dir: Path):
    (bundle_dir / "manifest.json").write_text("{not json")
    err = _rejected(bundle_dir)
    assert err.message == "manifest.json is not valid JSON"


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in entries:
            payload = data.get(info.name)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _file(name: str, payload: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info


def _archive_entries(bundle: Bundle) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    data = {"manifest.json": bundle.manifest_bytes, **bundle.files}
    return [_file(n, d) for n, d in data.items()], data


def test_the_archive_form_round_trips(bundle: Bundle):
    again = read_archive(to_archive(bundle), max_bytes=MAX)
    assert again.sha256 == bundle.sha256
    load_family(again)


def test_an_archive_with_a_path_traversal_member(bundle: Bundle):
    entries, data = _archive_entries(bundle)
    data["../evil.txt"] = b"owned"
    entries.append(_file("../evil.txt", b"owned"))
    with pytest.raises(BundleRejected) as info:
        read_archive(_tar(entries, data), max_bytes=MAX)
    assert info.value.message == "unsafe path in the bundle"
    assert info.value.details[0].field == "../evil.txt"


def test_an_archive_with_an_absolute_path(bundle: Bundle):
    entries, data = _archive_entries(bundle)
    data["/etc/evil"] = b"owned"
    entries.append(_file("/etc/evil", b"owned"))
    with pytest.raises(BundleRejected) as info:
        read_archive(_tar(entries, data), max_bytes=MAX)
    assert info.value.message == "unsafe path in the bundle"


def test_an_archive_with_a_symlink(bundle: Bundle):
    entries, data = _archive_entries(bundle)
    link = tarfile.TarInfo("link.txt")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    entries.append(link)
    with pytest.raises(BundleRejected) as info:
        read_archive(_tar(entries, data), max_bytes=MAX)
    assert info.value.message == "only regular files are allowed in a bundle"
    assert info.value.details[0].field == "link.txt"


def test_a_directory_with_a_symlink(bundle_dir: Path, tmp_path: Path):
    target = tmp_path / "outside.txt"
    target.write_text("secret")
    (bundle_dir / "link.txt").symlink_to(target)
    err = _rejected(bundle_dir)
    assert err.message == "links are not allowed in a bundle"


def test_bytes_that_are_not_an_archive():
    with pytest.raises(BundleRejected) as info:
        read_archive(b"definitely not gzip", max_bytes=MAX)
    assert info.value.details[0].field == "bundle"


def test_a_copy_is_independent(bundle_dir: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    (copy / MODEL).write_bytes(b"garbage")
    _load(bundle_dir)  # tampering with a copy leaves the original intact
