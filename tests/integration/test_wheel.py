"""The wheel is what the image installs (issue 17, item 3): installed without the checkout, it finds its schemas.

The wheel is built from this checkout and installed into a fresh virtual environment; the hub there is the
installed one (not the editable checkout: the fresh venv does not run .venv's editable finder), and only
its dependencies are borrowed from the test environment through a .pth line, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    import hub, hub.codec as codec
    from hub.deadletter import dead_letter
    key, value = dead_letter(b"raw row", "wheel-test", "invalid_input", "a detail", topic="health.admissions.v1")
    schema, decoded = codec.decode(value)
    print(json.dumps({"hub": hub.__file__, "schemas": str(codec.default_schemas_dir()), "schema": schema,
                      "reason": decoded["reason"], "count": len(codec.default_store().names())}))
""")


def test_the_installed_wheel_decodes_a_record_with_its_own_schemas(tmp_path: Path) -> None:
    # a clean copy: pip builds in the source tree, and a stale build/ there would hide a broken build
    src = tmp_path / "src"
    src.mkdir()
    for part in ("pyproject.toml", "setup.py", "README.md", "hub", "connectors", "schemas"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, src / part, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                          if (ROOT / part).is_dir() else {}))  # type: ignore[operator]
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next(dist.glob("health_relief_hub-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PYTHON"))}
    run = subprocess.run([str(python), "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=env)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["hub"].startswith(str(venv)), found  # the installed hub, not the checkout
    assert found["schemas"] == str(Path(found["hub"]).parent / "schemas")
    assert found["schema"] == "hub.outputs.DeadLetter" and found["reason"] == "invalid_input"
    assert found["count"] == len(list((ROOT / "schemas").rglob("*.avsc")))

    listed = subprocess.run([str(venv / "bin" / "hub"), "schemas", "list"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "hub.health.DischargeSettlementRequested" in listed.stdout
