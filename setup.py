"""Build hook: put the Avro contract (schemas/*.avsc) inside the wheel, as package data of ``hub``.

Why a hook: schemas/ is a top-level folder of the repository (the contract, owned by no package), but an
installed hub must find it (hub.codec.default_schemas_dir looks in ``hub/schemas`` when there is no
checkout beside the package). Everything else about the build is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithSchemas(build_py):
    """The usual build_py, then schemas/**/*.avsc copied to ``<build>/hub/schemas/`` (same sub-folders)."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "hub" / "schemas"
        for src in sorted((ROOT / "schemas").rglob("*.avsc")):
            dest = target / src.relative_to(ROOT / "schemas")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


setup(cmdclass={"build_py": BuildPyWithSchemas})
