"""Schema evolution check (`hub schemas check`): a changed .avsc must still read old data.

Why: records live on topics for up to four years (dead letters) and compacted topics keep the last
status of every person forever, so a consumer running the new schema must read everything written
with the previous one. That is Avro *backward* compatibility, and the authority on it is schema
resolution itself, so this check does not re-implement Avro's rules: for every schema whose
canonical form differs from the committed version (``git show REV:path``), it generates sample
records from the *old* schema — every enum symbol, every union branch, empty and non-empty arrays —
encodes them with the old schema and reads them with the new one through fastavro. Any failure is a
``Problem`` naming the schema, the file and fastavro's reason.

Schemas are compared by full name, each made standalone with the named types it references
(``hub.common.*``) as they were at that revision, so editing a shared enum is checked through every
event that uses it; moving a file is not a change. A schema or folder not yet committed (or a
repository without commits) has no baseline and is accepted. Removing a schema that exists at the
base revision is a problem: its data is still on the topics.

**Against the last release** (the default of ``hub schemas check``, what CI runs): comparing with ``HEAD``
cannot fail on a clean checkout, where the working tree *is* ``HEAD``. So every release commits a
snapshot of its schemas, ``schemas/released/<version>.json`` (``hub schemas release VERSION`` writes it,
and refuses to overwrite one: a release is what is on the topics), and the check compares the working
tree with the newest snapshot. A git revision can still be named (``--against HEAD~3``).
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from fastavro import schemaless_reader, schemaless_writer

from hub.codec import SchemaEntry, SchemaStore, default_schemas_dir
from hub.errors import SchemaError
from hub.topics import CATALOGUE

__all__ = ["Problem", "SchemaInfo", "check_against_release", "check_compatibility", "list_schemas", "releases",
           "sample_records", "schemas_command", "snapshot_release"]


@dataclass(frozen=True)
class Problem:
    """One backward-compatibility problem: which schema, in which file, and why."""

    schema: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.schema}: {self.message}"


@dataclass(frozen=True)
class SchemaInfo:
    """A schema of the folder as ``hub schemas list`` shows it."""

    name: str
    path: str
    schema_id: int
    fingerprint: str
    topic: str | None
    fields: tuple[str, ...]


def list_schemas(root: Path | str | None = None) -> list[SchemaInfo]:
    """Every schema in ``root`` (default: the hub's schemas/) with its id and the topic that carries it."""
    store = SchemaStore(root)
    topic_of = {t.schema: t.name for t in CATALOGUE}
    return [
        SchemaInfo(e.name, e.path, e.schema_id, e.fingerprint, topic_of.get(e.name), e.field_names)
        for e in store.entries()
    ]


# ---------------------------------------------------------------- git


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def _committed_texts(root: Path, rev: str) -> dict[str, str] | None:
    """``{path relative to root: text}`` of every .avsc under ``root`` at ``rev``; None without a baseline."""
    if _git(root, "rev-parse", "--is-inside-work-tree").returncode != 0:
        return None
    if _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode != 0:
        return None  # no commits yet, or the revision does not exist: nothing to be compatible with
    listing = _git(root, "ls-tree", "-r", "--name-only", rev, "--", ".")
    if listing.returncode != 0:
        return None
    texts: dict[str, str] = {}
    for rel in listing.stdout.splitlines():
        if not rel.endswith(".avsc"):
            continue
        shown = _git(root, "show", f"{rev}:./{rel}")
        if shown.returncode == 0:
            texts[rel] = shown.stdout
    return texts


# ---------------------------------------------------------------- sample data from a schema


_MAX_DEPTH = 6


def _variants(schema: Any) -> int:
    """How many sample records cover every enum symbol and union branch (at least 3: array sizes)."""
    if isinstance(schema, list):
        return max([len(schema), *(_variants(b) for b in schema)])
    if not isinstance(schema, dict):
        return 3
    kind = schema.get("type")
    if kind == "enum":
        return max(3, len(schema.get("symbols", [])))
    if kind in ("record", "error"):
        return max([3, *(_variants(f.get("type")) for f in schema.get("fields", []))])
    if kind == "array":
        return _variants(schema.get("items"))
    if kind == "map":
        return _variants(schema.get("values"))
    if isinstance(kind, (dict, list)):
        return _variants(kind)
    return 3


def _sample(schema: Any, i: int, named: dict[str, Any], depth: int) -> Any:
    if isinstance(schema, str):
        primitive = {
            "null": None, "boolean": i % 2 == 1, "int": i, "long": i * 1_000_003, "float": i + 0.5,
            "double": i + 0.25, "bytes": bytes([i % 256]) * (i % 3), "string": f"s{i}",
        }
        if schema in primitive:
            return primitive[schema]
        return _sample(named[schema], i, named, depth)
    if isinstance(schema, list):
        if depth >= _MAX_DEPTH and "null" in schema:
            return None
        return _sample(schema[i % len(schema)], i, named, depth + 1)
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if kind in ("record", "error"):
        named[schema["name"]] = schema
        return {f["name"]: _sample(f["type"], i, named, depth + 1) for f in schema.get("fields", [])}
    if kind == "enum":
        named[schema["name"]] = schema
        return schema["symbols"][i % len(schema["symbols"])]
    if kind == "fixed":
        named[schema["name"]] = schema
        return bytes([i % 256]) * int(schema["size"])
    if kind == "array":
        n = 0 if depth >= _MAX_DEPTH else i % 3
        return [_sample(schema["items"], i + j, named, depth + 1) for j in range(n)]
    if kind == "map":
        n = 0 if depth >= _MAX_DEPTH else i % 3
        return {f"k{j}": _sample(schema["values"], i + j, named, depth + 1) for j in range(n)}
    if logical in ("timestamp-micros", "timestamp-millis"):
        return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=i)
    if logical == "date":
        return date(2024, 1, 1) + timedelta(days=i)
    if logical == "decimal":
        return Decimal(i).scaleb(-int(schema.get("scale", 0)))
    if logical == "uuid":
        return f"00000000-0000-0000-0000-{i:012d}"
    return _sample(kind, i, named, depth)


def sample_records(entry: SchemaEntry) -> Iterator[Any]:
    """Records of ``entry``'s schema covering every enum symbol, union branch and 0-2 array items."""
    for i in range(_variants(entry.standalone)):
        yield _sample(entry.standalone, i, {}, 0)


def _incompatibility(old: SchemaEntry, new: SchemaEntry) -> str | None:
    """Why ``new`` cannot read data written with ``old``, or None when it can."""
    for n, record in enumerate(sample_records(old)):
        buf = io.BytesIO()
        try:
            schemaless_writer(buf, old.parsed, record)
        except Exception as exc:  # the generator does not know this construct: say so rather than pass
            return f"could not generate sample data from the old schema ({type(exc).__name__}: {exc})"
        buf.seek(0)
        try:
            schemaless_reader(buf, old.parsed, new.parsed)
        except Exception as exc:  # SchemaResolutionError and friends
            return (f"cannot read data written with the previous version (sample {n + 1}): "
                    f"{type(exc).__name__}: {exc}. Add fields with defaults, never remove enum symbols or "
                    f"change a type; or publish a new schema and topic (v2)")
    return None


def check_compatibility(base_rev: str = "HEAD", root: Path | str | None = None) -> list[Problem]:
    """Problems of the working tree's schemas against ``base_rev``; empty when all are compatible."""
    folder = Path(root).resolve() if root is not None else default_schemas_dir().resolve()
    try:
        new_store = SchemaStore(folder)
    except SchemaError as exc:
        return [Problem("*", str(folder), f"the schema folder does not load: {exc}")]
    old_texts = _committed_texts(folder, base_rev)
    if not old_texts:
        return []
    return _compare(old_texts, new_store, folder, base_rev)


def _compare(old_texts: dict[str, str], new_store: SchemaStore, folder: Path, label: str) -> list[Problem]:
    """Problems of ``new_store`` reading data written with the schemas of ``old_texts`` (``label`` names them)."""
    try:
        old_store = SchemaStore.from_texts(old_texts, root=f"{label}:{folder.name}")
    except SchemaError as exc:
        return [Problem("*", str(folder), f"the schemas at {label} do not load, cannot compare: {exc}")]
    problems: list[Problem] = []
    new_names = set(new_store.names())
    for old in old_store.entries():
        if old.name not in new_names:
            problems.append(Problem(old.name, old.path, f"removed or renamed since {label}; data written "
                                    "with it is still on the topics (keep it, or retire the topic first)"))
            continue
        new = new_store.entry(old.name)
        if new.canonical == old.canonical:
            continue  # only docs or formatting changed: same id, same bytes
        reason = _incompatibility(old, new)
        if reason:
            problems.append(Problem(new.name, new.path, reason))
    return problems


# ---------------------------------------------------------------- releases

RELEASED = "released"
"""Folder of release snapshots inside the schema folder (not .avsc: the codec does not load them)."""


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.replace("-", ".").split("."))


def releases(root: Path | str | None = None) -> list[str]:
    """Released versions with a snapshot in ``<schemas>/released/``, oldest first."""
    folder = Path(root) if root is not None else default_schemas_dir()
    return sorted((p.stem for p in (folder / RELEASED).glob("*.json")), key=_version_key)


def release_texts(version: str, root: Path | str | None = None) -> dict[str, str]:
    """``{relative path: .avsc text}`` of the schemas as released in ``version``."""
    folder = Path(root) if root is not None else default_schemas_dir()
    doc = json.loads((folder / RELEASED / f"{version}.json").read_text(encoding="utf-8"))
    return dict(doc["schemas"])


def check_against_release(version: str | None = None, root: Path | str | None = None) -> tuple[str | None,
                                                                                               list[Problem]]:
    """(the release compared with, problems of the working tree against it); (None, []) without releases."""
    folder = Path(root).resolve() if root is not None else default_schemas_dir().resolve()
    known = releases(folder)
    if version is None:
        if not known:
            return None, []
        version = known[-1]
    elif version not in known:
        raise SchemaError(f"no snapshot of release {version} in {folder / RELEASED}; known: {', '.join(known)}")
    try:
        new_store = SchemaStore(folder)
    except SchemaError as exc:
        return version, [Problem("*", str(folder), f"the schema folder does not load: {exc}")]
    return version, _compare(release_texts(version, folder), new_store, folder, f"release {version}")


def snapshot_release(version: str, root: Path | str | None = None) -> Path:
    """Write ``<schemas>/released/<version>.json``: every .avsc of the folder as this release ships it.

    Refuses an existing snapshot (a released contract is what is on the topics) and a folder that is not
    compatible with the previous release.
    """
    folder = Path(root).resolve() if root is not None else default_schemas_dir().resolve()
    target = folder / RELEASED / f"{version}.json"
    if target.exists():
        raise SchemaError(f"{target} exists: release {version} is already published and cannot change")
    _previous, problems = check_against_release(None, folder)
    if problems:
        raise SchemaError("not compatible with the last release: " + "; ".join(str(p) for p in problems))
    SchemaStore(folder)  # the folder loads
    texts = {str(p.relative_to(folder)): p.read_text(encoding="utf-8")
             for p in sorted(folder.rglob("*.avsc")) if RELEASED not in p.relative_to(folder).parts}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"version": version, "schemas": texts}, indent=1, ensure_ascii=False,
                                 sort_keys=True) + "\n", encoding="utf-8")
    return target


# ---------------------------------------------------------------- command


def schemas_command(action: str, out: TextIO, err: TextIO, *, base_rev: str | None = None,
                    root: Path | str | None = None, version: str | None = None) -> int:
    """``hub schemas list|check|release``: 0 when fine, 1 when a check finds problems, 2 on a usage/load error.

    ``check`` compares with the newest release snapshot, or with ``base_rev``: a release version with a
    snapshot, else a git revision. Without snapshots it falls back to ``HEAD``.
    """
    if action == "list":
        try:
            infos = list_schemas(root)
        except SchemaError as exc:
            err.write(f"hub schemas list: {exc}\n")
            return 2
        width = max((len(i.name) for i in infos), default=10)
        out.write(f"{'schema':<{width}}  {'id':>10}  {'topic':<36}  file\n")
        for i in infos:
            out.write(f"{i.name:<{width}}  {i.schema_id:>10}  {i.topic or '-':<36}  {i.path}\n")
        return 0
    if action == "check":
        return _check(out, err, base_rev, root)
    if action == "release":
        if not version:
            err.write("hub schemas release: give the version being released, e.g. 0.2.0\n")
            return 2
        try:
            path = snapshot_release(version, root)
        except SchemaError as exc:
            err.write(f"hub schemas release: {exc}\n")
            return 1
        out.write(f"hub schemas release: wrote {path}; commit it with the release\n")
        return 0
    err.write(f"hub schemas: unknown action {action!r}; use 'list', 'check' or 'release'\n")
    return 2


def _check(out: TextIO, err: TextIO, base_rev: str | None, root: Path | str | None) -> int:
    folder = Path(root).resolve() if root is not None else default_schemas_dir().resolve()
    if base_rev is None or base_rev in releases(folder):
        try:
            label, problems = check_against_release(base_rev, folder)
        except SchemaError as exc:
            err.write(f"hub schemas check: {exc}\n")
            return 2
        if label is not None:
            return _report(out, err, problems, f"release {label}", True)
        base_rev = "HEAD"
    problems = check_compatibility(base_rev, folder)
    return _report(out, err, problems, base_rev, bool(_committed_texts(folder, base_rev)))


def _report(out: TextIO, err: TextIO, problems: list[Problem], against: str, had_baseline: bool) -> int:
    if problems:
        for p in problems:
            err.write(f"incompatible: {p}\n")
        err.write(f"hub schemas check: {len(problems)} problem(s) against {against}\n")
        return 1
    if not had_baseline:
        out.write(f"hub schemas check: no schemas committed at {against}: nothing to be compatible with\n")
    else:
        out.write(f"hub schemas check: every schema can read data written with its {against} version\n")
    return 0
