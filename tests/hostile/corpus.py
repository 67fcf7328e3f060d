"""Hostile bundles, generated small: each one broke or strained a replica before (issue 12).

Every entry is (name, family, archive bytes, words the refusal must contain). The model
mutations start from the tiny churn bundle of tests/registry/bundles.py, with the manifest's
hashes made to match, so only the check under test can catch them.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import tarfile
import zlib
from collections.abc import Iterator

from app.bundles.io import sha256_hex
from tests.registry import bundles as b

MODEL = "churn.txt"


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A .tar.gz of exactly these members, in this order (duplicates kept)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE) -> tuple[
        tarfile.TarInfo, bytes | None]:
    """One tar member of any kind."""
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    info.linkname = "churn.txt" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    return info, None


def churn_files(text: str | None = None, extra: dict[str, bytes] | None = None,
                manifest: dict[str, object] | None = None) -> dict[str, bytes]:
    """The churn bundle's files with the model text (and extra files) replaced, hashes fixed."""
    bundle = b.churn_bundle(5)
    files = {**bundle.files, **({MODEL: text.encode()} if text is not None else {}),
             **(extra or {})}
    fields = manifest if manifest is not None else json.loads(bundle.manifest_bytes)
    fields["files"] = {n: sha256_hex(d) for n, d in files.items()}
    return {"manifest.json": json.dumps(fields).encode(), **files}


def archive(files: dict[str, bytes]) -> bytes:
    """A plain archive of these files."""
    return tar_gz([member(n, d) for n, d in files.items()])


def model_text() -> str:
    """The tiny churn model's text."""
    return b.churn_bundle(5).text(MODEL)


def with_tree_sizes_fixed(old: str, new: str) -> str:
    """`new` (an edit of tree 0 of `old`) with tree_sizes saying tree 0's new length."""
    sizes = re.search(r"^tree_sizes=(.*)$", old, re.MULTILINE).group(1).split()  # type: ignore[union-attr]
    sizes[0] = str(int(sizes[0]) + len(new.encode()) - len(old.encode()))
    return re.sub(r"^tree_sizes=.*$", "tree_sizes=" + " ".join(sizes), new, count=1,
                  flags=re.MULTILINE)


def num_leaves_off_by_one() -> str:
    """Tree 0 says one more leaf than its arrays hold: LightGBM calls std::terminate."""
    text = model_text()
    n = int(re.search(r"\nnum_leaves=(\d+)\n", text).group(1))  # type: ignore[union-attr]
    return text.replace(f"\nnum_leaves={n}\n", f"\nnum_leaves={n + 1}\n", 1)


def split_feature_out_of_range() -> str:
    """Tree 0 splits on feature 2,000,000,000 (tree_sizes fixed): LightGBM reads far out of
    bounds and the process dies of SIGSEGV."""
    text = model_text()
    new = re.sub(r"\nsplit_feature=\d+", "\nsplit_feature=2000000000", text, count=1)
    return with_tree_sizes_fixed(text, new)


def _gzip_stream(chunks: Iterator[bytes]) -> bytes:
    deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(deflate.compress(c) for c in chunks) + deflate.flush()


def huge_metadata(kind: bytes, size: int) -> bytes:
    """A pax header ('x') or GNU long name ('L') record of `size` bytes, then a file."""
    head = tarfile.TarInfo("././@LongLink" if kind == b"L" else "./PaxHeaders/x")
    head.type, head.size = kind, size
    block = head.tobuf(format=tarfile.USTAR_FORMAT)

    def chunks() -> Iterator[bytes]:
        yield block
        step = bytes(1 << 20).replace(b"\0", b"a")
        for _ in range(size // len(step)):
            yield step
        yield b"a" * (size % len(step)) + bytes(-size % 512)
        info, data = member("manifest.json", b"{}")
        yield info.tobuf(format=tarfile.USTAR_FORMAT) + data.ljust(512, b"\0")  # type: ignore[union-attr]
        yield bytes(1024)
    return _gzip_stream(chunks())


def many_members(count: int) -> bytes:
    """`count` empty files (each one a 512-byte header)."""
    header = member("f.json")[0].tobuf(format=tarfile.USTAR_FORMAT)

    def chunks() -> Iterator[bytes]:
        yield header * count
        yield bytes(1024)
    return _gzip_stream(chunks())


def nested_manifest(depth: int) -> bytes:
    """A manifest.json nested `depth` arrays deep."""
    return archive({"manifest.json": b"[" * depth + b"]" * depth})


def corpus() -> list[tuple[str, str, bytes, str]]:
    """Every hostile push: (name, family, body, words the refusal names)."""
    files = churn_files()
    text0 = b"(dp0\nS'policy'\np1\nS'v4'\np2\ns."  # a protocol 0 pickle
    return [
        ("num_leaves_plus_one", "churn", archive(churn_files(num_leaves_off_by_one())),
         "leaf_value"),
        ("split_feature_2e9", "churn", archive(churn_files(split_feature_out_of_range())),
         "split_feature"),
        ("pax_header_1mb", "churn", huge_metadata(b"x", 1 << 20), "metadata"),
        ("pax_header_100mb", "churn", huge_metadata(b"x", 100 << 20), "exceeds"),
        ("gnu_longname_1mb", "churn", huge_metadata(b"L", 1 << 20), "metadata"),
        ("members_300", "churn", many_members(300), "too many members"),
        ("name_300_bytes", "churn", archive({**files, "a" * 295 + ".json": b"{}"}), "too long"),
        ("members_200k", "churn", many_members(200_000), "exceeds"),
        ("duplicate_model", "churn", tar_gz([member(n, d) for n, d in files.items()]
                                           + [member(MODEL, b"tree\nversion=v4\n")]), "twice"),
        ("symlink", "churn", tar_gz([member(n, d) for n, d in files.items()]
                                    + [member("link.txt", kind=tarfile.SYMTYPE)]), "link"),
        ("hardlink", "churn", tar_gz([member(n, d) for n, d in files.items()]
                                     + [member("hard.txt", kind=tarfile.LNKTYPE)]), "link"),
        ("fifo", "churn", tar_gz([member(n, d) for n, d in files.items()]
                                 + [member("pipe", kind=tarfile.FIFOTYPE)]), "fifo"),
        ("device", "churn", tar_gz([member(n, d) for n, d in files.items()]
                                   + [member("dev", kind=tarfile.CHRTYPE)]), "device"),
        ("text_pickle_notes", "churn", archive(churn_files(extra={"notes.txt": text0})),
         "pickle"),
        ("binary_pickle_model", "churn",
         archive(churn_files(extra={MODEL: pickle.dumps({"w": [1.0]}, protocol=5)})), "pickle"),
        ("unknown_kind", "churn", archive(churn_files(extra={"readme.md": b"# hi\n"})),
         "file kind"),
        ("path_traversal", "churn", archive({**files, "../evil.json": b"{}"}), "unsafe path"),
        ("absolute_path", "churn", archive({**files, "/etc/evil.json": b"{}"}), "unsafe path"),
        ("tampered_hash", "churn", archive({**files, MODEL: files[MODEL] + b"\n"}), "sha256"),
        ("manifest_100k_deep", "churn", nested_manifest(100_000), "deeper"),
        ("not_gzip", "churn", b"hello, not an archive", "not a .tar.gz"),
    ]
