"""The SDK without a broker: configuration errors that name the key, mapping, discovery, CLI, scaffold."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.cli import connector_list, connector_new, connector_validate
from connectors.examples.make_samples import mistyped, synthetic_id
from connectors.sdk import MappingConfig, RecordRejected, map_row, plugins, testkit
from connectors.sdk.base import SinkConnector, SourceConnector

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "connectors" / "examples"


def validate_text(tmp_path: Path, yaml_text: str) -> tuple[int, str, str]:
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    return connector_validate(str(p), out, err), out.getvalue(), err.getvalue()


@pytest.mark.parametrize("config", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_configuration_is_valid(config: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert connector_validate(str(EXAMPLES / config), out, err) == 0, err.getvalue()
    assert out.getvalue().startswith("ok: ")


def test_a_wrong_key_is_named(tmp_path: Path) -> None:
    base = (EXAMPLES / "civil_affairs_roster.yaml").read_text(encoding="utf-8")
    code, _, err = validate_text(tmp_path, base.replace("encoding: auto", "encodng: auto"))
    assert code == 2 and "key `encodng`" in err and "unknown key" in err
    code, _, err = validate_text(tmp_path, base.replace("type: id_number", "type: idnumber"))
    assert code == 2 and "key `mapping.fields.person_token.type`" in err and "'idnumber'" in err
    code, _, err = validate_text(tmp_path, base.replace("civil-affairs.assistance-status.v1", "civil.v1"))
    assert code == 2 and "key `topic`" in err and "unknown topic 'civil.v1'" in err
    code, _, err = validate_text(tmp_path, base.replace("connector: file_drop", "connector: ftp"))
    assert code == 2 and "key `connector`" in err and "file_drop" in err


def test_a_missing_secret_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    code, _, err = validate_text(tmp_path, "name: x\nconnector: webhook\ntopics: [hub.referrals.v1]\n"
                                           "url: http://h/\nsecret: ${NO_SUCH_SECRET}\n")
    assert code == 2 and "key `secret`" in err and "NO_SUCH_SECRET" in err


MAPPING = MappingConfig.model_validate({
    "natural_key": ["身份证号"],
    "fields": {
        "person_token": {"column": "身份证号|公民身份号码", "type": "id_number"},
        "occurred_at": {"column": "日期", "type": "datetime"},
        "household_income_fen": {"column": "收入(元)", "type": "yuan", "required": False},
        "categories": {"column": "类别", "type": "categories", "values": {"脱贫人口": "poverty_alleviated",
                                                                           "监测对象": "monitored"}},
    },
})


def test_mapping_reads_department_wording() -> None:
    row = {" 公民身份\n号码 ": f" {synthetic_id(1).lower()} ", "日期": "2024年3月5日", "收入（元）": "8,650.5",
           "类别": "监测对象、脱贫人口"}
    m = map_row(MAPPING, row, source="s", pseudonym_key="k")
    assert m.key == m.value["person_token"] and m.key.startswith("p_")
    assert m.value["occurred_at"] == "2024-03-05T00:00:00+08:00"
    assert m.value["household_income_fen"] == 865050
    assert m.value["categories"] == ["monitored", "poverty_alleviated"]
    assert map_row(MAPPING, row, source="s", pseudonym_key="k").value["event_id"] == m.value["event_id"]
    changed = {**row, "收入（元）": "9000"}
    assert map_row(MAPPING, changed, source="s", pseudonym_key="k").value["event_id"] != m.value["event_id"]


@pytest.mark.parametrize(("cells", "reason", "column"), [
    ({"身份证号": mistyped(synthetic_id(1))}, "invalid_id_number", "身份证号"),
    ({"身份证号": synthetic_id(1), "收入(元)": "12.345"}, "invalid_input", "收入(元)"),
    ({"身份证号": synthetic_id(1), "类别": "五保户"}, "invalid_input", "类别"),
    ({"身份证号": synthetic_id(1), "日期": "三月五日"}, "invalid_input", "日期"),
    ({"身份证号": synthetic_id(1), "日期": None}, "missing_field", "日期"),
])
def test_mapping_rejects_name_the_column_and_never_the_number(cells: dict[str, object], reason: str,
                                                               column: str) -> None:
    row = {"日期": "2024-03-05", "类别": "脱贫人口", **cells}
    with pytest.raises(RecordRejected) as exc:
        map_row(MAPPING, row, source="s", pseudonym_key="k")
    assert exc.value.reason == reason and column in str(exc.value.field)
    assert synthetic_id(1)[:17] not in exc.value.detail


def test_builtins_are_discovered_with_their_kinds() -> None:
    found = plugins.discover()
    assert set(plugins.BUILTIN) <= set(found)
    kinds = {n: found[n].load().kind for n in plugins.BUILTIN}
    assert kinds == {"file_drop": "source", "sql_poll": "source", "http_ingest": "source",
                     "webhook": "sink", "sql_upsert": "sink", "file_export": "sink", "audit_log": "sink"}
    assert all(issubclass(found[n].load(), SourceConnector | SinkConnector) for n in found)
    out = io.StringIO()
    assert connector_list(out) == 0 and "webhook" in out.getvalue()


def test_builtins_match_the_entry_points_declared_in_pyproject() -> None:
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["hub.connectors"]
    assert declared == plugins.BUILTIN


def test_connector_new_scaffolds_a_package_whose_test_passes(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert connector_new("township_diagnoses", str(tmp_path), out, err) == 0, err.getvalue()
    root = tmp_path / "township_diagnoses"
    assert (root / "pyproject.toml").read_text().count('township_diagnoses = "township_diagnoses.connector:') == 1
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{root}"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    assert connector_new("township_diagnoses", str(tmp_path), out, err) == 2  # never overwrites
    assert connector_new("Bad-Name", str(tmp_path), out, err) == 2


def test_testkit_token_is_the_mapping_token() -> None:
    assert testkit.token(synthetic_id(5)) == map_row(
        MAPPING, {"身份证号": synthetic_id(5), "日期": "2024-01-01", "类别": "脱贫人口"}, source="s",
        pseudonym_key=testkit.TEST_PSEUDONYM_KEY).key


def test_readme_documents_every_property_of_every_builtin() -> None:
    from connectors.sdk.config import SinkConfig, SourceConfig
    from connectors.sdk.docs import all_tables, config_table
    from connectors.sdk.mapping import FieldSpec, MappingConfig

    readme = (ROOT / "connectors" / "README.md").read_text(encoding="utf-8")
    tables = {**all_tables(), "source": config_table(SourceConfig), "sink": config_table(SinkConfig),
              "mapping": config_table(MappingConfig), "field": config_table(FieldSpec)}
    for name, table in tables.items():
        missing = [row for row in table.splitlines() if row not in readme]
        assert not missing, f"{name}: README lacks {missing} (regenerate with python -m connectors.sdk.docs)"
    headings = ["**Overview.**", "**How it works.**", "**Data change events.**", "**Type mappings.**",
                "**Setting up the", "**Configuration.**", "**Behaviour when things go wrong.**"]
    for name in plugins.BUILTIN:
        section = readme.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        positions = [section.find(h) for h in headings]
        assert -1 not in positions and positions == sorted(positions), name
