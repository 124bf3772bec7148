"""hub.schemacheck: a changed .avsc must read data written with its committed version."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hub.codec import default_schemas_dir
from hub.schemacheck import check_against_release, check_compatibility, list_schemas, releases, schemas_command

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.org", "HOME": str(repo), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the project's schemas/ (not yet committed)."""
    shutil.copytree(default_schemas_dir(), tmp_path / "schemas", ignore=shutil.ignore_patterns("*.md", "released"))
    git(tmp_path, "init", "-q")
    return tmp_path


def commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "schemas")


def edit(repo: Path, rel: str, change: Any) -> None:
    path = repo / "schemas" / rel
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")


def field(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in doc["fields"] if f["name"] == name)


def test_repository_without_commits_is_fine(repo: Path) -> None:
    assert check_compatibility(root=repo / "schemas") == []
    out, err = io.StringIO(), io.StringIO()
    assert schemas_command("check", out, err, root=repo / "schemas") == 0
    assert "no schemas committed" in out.getvalue()


def test_folder_outside_git_is_fine(tmp_path: Path) -> None:
    shutil.copytree(default_schemas_dir(), tmp_path / "schemas")
    assert check_compatibility(root=tmp_path / "schemas") == []


def test_unchanged_and_doc_only_changes_are_fine(repo: Path) -> None:
    commit(repo)
    assert check_compatibility(root=repo / "schemas") == []
    edit(repo, "health/DiagnosisRecorded.avsc", lambda d: field(d, "icd10").update(doc="reworded"))
    assert check_compatibility(root=repo / "schemas") == []


def test_new_schema_not_yet_committed_is_fine(repo: Path) -> None:
    commit(repo)
    (repo / "schemas" / "health" / "New.avsc").write_text(json.dumps(
        {"type": "record", "name": "New", "namespace": "hub.health", "doc": "d",
         "fields": [{"name": "x", "type": "string", "doc": "d"}]}), encoding="utf-8")
    assert check_compatibility(root=repo / "schemas") == []


def test_adding_an_optional_field_or_an_enum_symbol_is_backward_compatible(repo: Path) -> None:
    commit(repo)
    edit(repo, "health/DiagnosisRecorded.avsc", lambda d: d["fields"].append(
        {"name": "hospital_code", "type": ["null", "string"], "default": None, "doc": "where"}))
    edit(repo, "common/FacilityKind.avsc", lambda d: d["symbols"].append("mobile_clinic"))
    assert check_compatibility(root=repo / "schemas") == []


@pytest.mark.parametrize(
    ("rel", "change", "schema"),
    [
        ("health/DiagnosisRecorded.avsc",
         lambda d: d["fields"].append({"name": "severity", "type": "int", "doc": "no default"}),
         "hub.health.DiagnosisRecorded"),
        ("health/DischargeSettlementRequested.avsc", lambda d: field(d, "total_fen").update(type="int"),
         "hub.health.DischargeSettlementRequested"),
        ("common/HospitalLevel.avsc", lambda d: d["symbols"].remove("L3"),
         "hub.health.DischargeSettlementRequested"),  # a shared enum breaks every event that uses it
        ("insurance/EnrollmentChanged.avsc", lambda d: field(d, "subsidy_category").update(type=["null", "int"]),
         "hub.insurance.EnrollmentChanged"),
    ],
)
def test_incompatible_changes_are_reported(repo: Path, rel: str, change: Any, schema: str) -> None:
    commit(repo)
    edit(repo, rel, change)
    problems = check_compatibility(root=repo / "schemas")
    assert schema in {p.schema for p in problems}
    out, err = io.StringIO(), io.StringIO()
    assert schemas_command("check", out, err, root=repo / "schemas") == 1
    assert schema in err.getvalue() and "cannot read data written" in err.getvalue()


def test_removed_schema_is_reported(repo: Path) -> None:
    commit(repo)
    (repo / "schemas" / "health" / "DiagnosisRecorded.avsc").unlink()
    problems = check_compatibility(root=repo / "schemas")
    assert [p.schema for p in problems] == ["hub.health.DiagnosisRecorded"]
    assert "removed" in problems[0].message


def test_moved_file_is_not_a_change(repo: Path) -> None:
    commit(repo)
    (repo / "schemas" / "health" / "DiagnosisRecorded.avsc").rename(repo / "schemas" / "Diag.avsc")
    assert check_compatibility(root=repo / "schemas") == []


def test_compare_against_an_older_revision(repo: Path) -> None:
    commit(repo)
    edit(repo, "common/FlagState.avsc", lambda d: d["symbols"].remove("cleared"))
    commit(repo)
    assert check_compatibility("HEAD", root=repo / "schemas") == []
    assert {p.schema for p in check_compatibility("HEAD~1", root=repo / "schemas")} >= {
        "hub.common.FlagState", "hub.outputs.RiskFlagChanged"}


def test_broken_working_tree_is_a_problem(repo: Path) -> None:
    commit(repo)
    (repo / "schemas" / "health" / "DiagnosisRecorded.avsc").write_text("{", encoding="utf-8")
    problems = check_compatibility(root=repo / "schemas")
    assert problems and "does not load" in problems[0].message


def test_list() -> None:
    infos = {i.name: i for i in list_schemas()}
    assert infos["hub.health.DischargeSettlementRequested"].topic == "health.discharges.v1"
    out, err = io.StringIO(), io.StringIO()
    assert schemas_command("list", out, err) == 0
    assert str(infos["hub.outputs.Settlement"].schema_id) in out.getvalue()
    assert schemas_command("frobnicate", out, err) == 2


# ---------------------------------------------------------------- against the last release (issue 17, item 8)


def _released_copy(tmp_path: Path) -> Path:
    """The project's schemas/ with its release snapshots, outside any git repository (a clean CI checkout
    compares nothing with HEAD: only the snapshot can fail it)."""
    folder = tmp_path / "schemas"
    shutil.copytree(default_schemas_dir(), folder, ignore=shutil.ignore_patterns("*.md"))
    return folder


def _cli_check(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | {"HUB_SCHEMAS_DIR": str(folder)}
    return subprocess.run([sys.executable, "-m", "hub.cli", "schemas", "check"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=folder.parent)


def test_the_current_release_has_a_snapshot_and_the_schemas_still_read_it() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert version in releases(), f"schemas/released/{version}.json missing: run `hub schemas release {version}`"
    label, problems = check_against_release()
    assert label == releases()[-1] and problems == []


def test_an_incompatible_change_fails_the_ci_check_on_a_clean_checkout(tmp_path: Path) -> None:
    folder = _released_copy(tmp_path)
    assert _cli_check(folder).returncode == 0
    edit(tmp_path, "common/Department.avsc", lambda d: d["symbols"].remove("charity"))
    res = _cli_check(folder)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "hub.common.Department" in res.stderr or "Department" in res.stderr
    assert f"against release {releases(folder)[-1]}" in res.stderr


def test_a_compatible_change_passes_and_can_be_released(tmp_path: Path) -> None:
    folder = _released_copy(tmp_path)
    edit(tmp_path, "outputs/DeadLetter.avsc",
         lambda d: d["fields"].append({"name": "note", "type": ["null", "string"], "default": None, "doc": "n"}))
    assert _cli_check(folder).returncode == 0
    out, err = io.StringIO(), io.StringIO()
    assert schemas_command("release", out, err, root=folder, version="99.0.0") == 0, err.getvalue()
    assert releases(folder)[-1] == "99.0.0"
    # a published release never changes
    assert schemas_command("release", out, err, root=folder, version="99.0.0") == 1
    assert "already published" in err.getvalue()
    # the next check compares with 99.0.0: changing the new field's type is now a problem
    edit(tmp_path, "outputs/DeadLetter.avsc", lambda d: field(d, "note").update(type=["null", "long"]))
    res = _cli_check(folder)
    assert res.returncode == 1 and "against release 99.0.0" in res.stderr, res.stdout + res.stderr
