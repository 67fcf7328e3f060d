"""The bundles a whole-book run scores with, and the context built from them.

Three sources, each giving one bundle per family and its version number:
- `from_dirs(DIR)`: DIR/<family>/ bundle directories (as models/); version 0 = not from a
  registry (the sha256 still identifies every bundle);
- `from_api(url, key, pins)`: the registry's HTTP API (downloads need an operator key);
- `from_database(url, pins)`: the registry database directly (TIERWISE_DATABASE_URL).
Registry sources take production by default; a pin (`family=version` or `family=alias`)
names another version, which must be approved, as for a pinned API request.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.bundles.io import Bundle, read_archive, read_dir
from app.bundles.manifest import FAMILIES
from app.errors import BundleRejected, FieldProblem, NotFound, TierwiseError
from app.scoring.context import ScoringContext, build_context

_MAX_ARCHIVE = 1 << 30


@dataclass(frozen=True)
class ModelSet:
    """One bundle per family, the version numbers, and where they came from."""

    bundles: dict[str, Bundle]
    versions: dict[str, int]
    source: str

    def context(self, *, fast: bool = True, cache_dir: Path | None = None) -> ScoringContext:
        """The scoring context, with the native tree walker when it builds and agrees with
        LightGBM here (app/engine/compiled.py), else plain LightGBM."""
        try:
            ctx = build_context(self.bundles, self.versions)
        except ValueError as exc:  # e.g. two models declare one feature differently
            raise BundleRejected("these versions do not fit together",
                                 [FieldProblem("features", str(exc))]) from None
        if fast:
            from app.engine.compiled import fastest_evaluator

            cache = cache_dir or Path(tempfile.gettempdir()) / "tierwise-walker"
            ctx.use_evaluator(fastest_evaluator(ctx.layout, cache_dir=cache))
        return ctx

    def sha256s(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((f, b.sha256) for f, b in self.bundles.items()))


def parse_pins(values: list[str]) -> dict[str, str]:
    """`family=version|alias` pairs; InvalidRequest-like BundleRejected naming a bad one."""
    pins: dict[str, str] = {}
    problems = []
    for item in values:
        family, sep, pin = item.partition("=")
        family, pin = family.strip(), pin.strip()
        if not sep or not family or not pin:
            problems.append(FieldProblem("pin", f"{item!r}: use family=version or family=alias"))
        elif family not in FAMILIES:
            problems.append(FieldProblem(f"pin.{family}", "one of " + ", ".join(FAMILIES)))
        else:
            pins[family] = pin
    if problems:
        raise NotFound("unknown pins", problems)
    return pins


def from_dirs(root: Path) -> ModelSet:
    """Bundle directories root/<family>/ (every hash checked)."""
    if not root.is_dir():
        raise NotFound(f"{root} is not a directory", [FieldProblem("bundles", "not found")])
    missing = [f for f in FAMILIES if not (root / f / "manifest.json").is_file()]
    if missing:
        raise NotFound(f"{root} holds no bundle for {', '.join(missing)}",
                       [FieldProblem(f"bundles.{f}", f"no {root / f / 'manifest.json'}")
                        for f in missing])
    return ModelSet({f: read_dir(root / f) for f in FAMILIES}, dict.fromkeys(FAMILIES, 0),
                    f"bundles in {root}")


def from_api(url: str, key: str | None, pins: Mapping[str, str]) -> ModelSet:
    """Production (or pinned versions) downloaded through the registry's HTTP API."""
    from app.registry.client import RegistryClient

    with RegistryClient(url, key) as client:
        aliases = {fam["name"]: fam["aliases"] for fam in client.models()["families"]}
        versions: dict[str, int] = {}
        for family in FAMILIES:
            pin = pins.get(family, "production")
            named = aliases.get(family, {})
            if pin.isdigit():
                versions[family] = int(pin)
            elif pin in named:
                versions[family] = int(named[pin])
            else:
                raise NotFound(f"{family} has no {pin} alias",
                               [FieldProblem(f"pin.{family}", "alias not set")])
        serving = {f: int(a["production"]) for f, a in aliases.items() if "production" in a}
        for family, version in versions.items():
            if family in pins and version != serving.get(family):
                _require_approved_api(client, family, version)
        bundles = {}
        for family, version in versions.items():
            archive, sha256 = client.bundle(family, version)
            bundle = read_archive(archive, max_bytes=_MAX_ARCHIVE)
            if bundle.family != family or (sha256 and bundle.sha256 != sha256):
                raise BundleRejected(f"{family} version {version} is not the bundle the "
                                     "registry recorded",
                                     [FieldProblem(f"{family}.v{version}", "sha256 differs")])
            bundles[family] = bundle
    return ModelSet(bundles, versions, f"registry {url}")


def _require_approved_api(client: object, family: str, version: int) -> None:
    """As a pinned API request: approved, or production at some time (the seed, rollbacks)."""
    from app.registry.client import RegistryClient

    assert isinstance(client, RegistryClient)
    summary = next((v for v in client.versions(family)["versions"]
                    if v["version"] == version), None)
    if summary is None:
        raise NotFound(f"{family} has no version {version}",
                       [FieldProblem(f"pin.{family}", "unknown version")])
    if summary["approvals"] > 0:
        return
    if any(m.get("alias") == "production" and m.get("version") == version
           for m in client.history(family)["moves"]):
        return
    raise _not_approved(family, version)


def _not_approved(family: str, version: int) -> TierwiseError:
    from app.registry.service import NotApproved

    return NotApproved(f"only approved versions may decide: {family} version {version} is "
                       "not approved", [FieldProblem(f"pin.{family}",
                                                     f"version {version} is not approved")])


def from_database(url: str, pins: Mapping[str, str]) -> ModelSet:
    """Production (or pinned versions) read from the registry database."""
    from app.registry import repository, store
    from app.registry.database import make_engine, make_sessionmaker
    from app.registry.pins import require_approved, resolve_pin

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            aliases = repository.alias_map(session)
            serving = {f: a["production"] for f, a in aliases.items() if "production" in a}
            versions = {}
            for family in FAMILIES:
                if family in pins:
                    versions[family] = resolve_pin(session, family, pins[family])
                elif family in serving:
                    versions[family] = serving[family]
                else:
                    raise NotFound(f"{family} has no production version",
                                   [FieldProblem(f"{family}.production", "alias not set")])
            require_approved(session, {f: versions[f] for f in pins
                                       if versions[f] != serving.get(f)})
            bundles = store.load_bundles(session, versions)
    finally:
        engine.dispose()
    from app.registry.database import safe_url

    return ModelSet(bundles, versions, f"registry database {safe_url(url)}")
