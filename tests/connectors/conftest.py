"""Fixtures of the connector tests: a real PostgreSQL (pytest-postgresql over Debian's pg_ctl),
valid resident ID numbers, and a place for connector files.

PostgreSQL: pytest-postgresql starts a throwaway server with ``pg_ctl``. PostgreSQL refuses to
run as root, so when the tests run as root ``pg_ctl_as_postgres.sh`` runs it as the ``postgres``
user. No server installed is a test *failure* with the fix in the message, never a skip: the
Makefile installs it, so its absence is a broken environment.
"""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path

import pytest
from pytest_postgresql import factories

from hub.identity import check_character

HERE = Path(__file__).parent
PG_CTL_WRAPPER = HERE / "pg_ctl_as_postgres.sh"
if not os.access(PG_CTL_WRAPPER, os.X_OK):  # a checkout may lose the executable bit
    PG_CTL_WRAPPER.chmod(PG_CTL_WRAPPER.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def debian_pg_ctl() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return found[-1] if found else None


@pytest.fixture(scope="session")
def pg_ctl_present() -> str:
    path = debian_pg_ctl()
    if path is None:
        pytest.fail("PostgreSQL server not installed: no /usr/lib/postgresql/*/bin/pg_ctl. "
                    "Run `make test` (it installs Debian's postgresql) or `apt-get install postgresql`.")
    return path


_postgresql_proc = factories.postgresql_proc(executable=str(PG_CTL_WRAPPER), port=None)


@pytest.fixture(scope="session")
def postgresql_proc(pg_ctl_present: str, _postgresql_proc: object) -> object:
    """pytest-postgresql's server, started only once pg_ctl is known to exist (else a clear failure)."""
    return _postgresql_proc


postgresql = factories.postgresql("postgresql_proc")


@pytest.fixture
def pg_url(postgresql: object) -> str:
    """SQLAlchemy URL of the per-test database pytest-postgresql created."""
    info = postgresql.info  # type: ignore[attr-defined]
    return f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{info.dbname}"


def make_id(region: str = "530102", born: str = "19800101", seq: int = 1) -> str:
    """A valid 18-character resident ID number (GB 11643 check character computed)."""
    first17 = f"{region}{born}{seq % 1000:03d}"
    return first17 + check_character(first17)
