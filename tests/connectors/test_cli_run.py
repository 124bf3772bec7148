"""`hub connector run --once` on an example configuration, through connectors.cli."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import pytest

from connectors.cli import connector_run
from connectors.examples.make_samples import write_samples
from connectors.sdk import testkit
from hub.config import get_settings

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parents[2] / "connectors" / "examples"


def test_run_once_prints_what_it_did(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PSEUDONYM_KEY", testkit.TEST_PSEUDONYM_KEY)
    monkeypatch.setenv("HUB_EDGE_KEY", base64.b64encode(testkit.TEST_EDGE_KEY).decode())
    get_settings.cache_clear()
    write_samples(tmp_path)
    name = testkit.unique_name("family-doctor")
    text = (EXAMPLES / "family_doctor.yaml").read_text(encoding="utf-8")
    text = text.replace("name: family-doctor", f"name: {name}").replace("settle_seconds: 2", "settle_seconds: 0")
    (tmp_path / "fd.yaml").write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    try:
        code = connector_run(str(tmp_path / "fd.yaml"), kafka_bootstrap, out, err, once=True)
    finally:
        get_settings.cache_clear()
    assert code == 0, err.getvalue()
    assert f"{name}: produced 3, rejected 1" in out.getvalue()


def test_run_with_an_invalid_configuration_exits_2(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "family_doctor.yaml", tmp_path / "fd.yaml")
    (tmp_path / "fd.yaml").write_text((tmp_path / "fd.yaml").read_text(encoding="utf-8") + "colour: blue\n",
                                      encoding="utf-8")
    err = io.StringIO()
    assert connector_run(str(tmp_path / "fd.yaml"), "127.0.0.1:1", io.StringIO(), err, once=True) == 2
    assert "key `colour`: unknown key" in err.getvalue()
