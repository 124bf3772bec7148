"""Settings (issue 17, item 1): a typo in a HUB_* variable stops the process, and every HUB_* variable the
code, the deploy files and the example connector configs use today is accepted.

The second half derives the variable names from the repository itself (a regex over code and deploy
files), so a new ``os.environ.get("HUB_X")`` without a Settings field fails here, not in production.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.config import NOT_SETTINGS, Settings, setting_names

ROOT = Path(__file__).resolve().parents[2]
_NAME = re.compile(r"\bHUB_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*])")
"""A variable name; ``HUB_KAFKA_*`` (a family named in prose) is not one."""
_CODE = ("hub", "connectors", "tests", "benchmarks", "deploy")
_SUFFIXES = {".py", ".yaml", ".yml", ".sh", ".toml"}


def _repository_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    files = [p for d in _CODE for p in (ROOT / d).rglob("*") if p.is_file() and
             (p.suffix in _SUFFIXES or p.name in ("Dockerfile", "Makefile"))]
    files += [ROOT / "Makefile"]
    for path in files:
        if path == Path(__file__).resolve():
            continue  # this file spells wrong names on purpose
        for name in _NAME.findall(path.read_text(encoding="utf-8", errors="replace")):
            names.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return names


def test_an_unknown_hub_variable_is_an_error_naming_the_nearest_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_KAFKA_SASL_PASWORD", "secret")
    with pytest.raises(ValidationError) as caught:
        Settings()
    text = str(caught.value)
    assert "HUB_KAFKA_SASL_PASWORD (did you mean HUB_KAFKA_SASL_PASSWORD?)" in text
    assert "secret" not in text


def test_lower_case_unknown_names_are_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("hub_brokr", "kafka://x:9092")  # pydantic-settings matches case-insensitively
    with pytest.raises(ValidationError, match="hub_brokr"):
        Settings()


def test_every_hub_variable_used_in_the_repository_is_accepted() -> None:
    used = _repository_names()
    assert {"HUB_BROKER", "HUB_BATCH_MAX", "HUB_APP_ID", "HUB_TOKEN_HEALTH", "HUB_KAFKA_SASL_PASSWORD"} <= set(used)
    known = setting_names() | set(NOT_SETTINGS)
    unknown = {n: sorted(files) for n, files in used.items() if n not in known}
    assert not unknown, f"HUB_* names used but neither a Settings field nor in NOT_SETTINGS: {unknown}"


def test_not_settings_lists_only_names_still_read_where_it_says() -> None:
    for name, where in NOT_SETTINGS.items():
        assert name in (ROOT / where).read_text(encoding="utf-8"), f"{name} is no longer read by {where}"
        assert name not in setting_names()


def test_old_variables_map_to_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"HUB_APP_ID": "hub-b", "HUB_BATCH_MAX": "6000", "HUB_REGION": "520000",
                        "HUB_WALL_CLOCK": "0", "HUB_SKIP_PROBE": "1", "HUB_TICK_SECONDS": "2",
                        "HUB_SCHEMAS_DIR": "/tmp/s"}.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert (s.app_id, s.batch_max, s.region) == ("hub-b", 6000, "520000")
    assert s.wall_clock is False and s.skip_probe is True and s.tick_seconds == 2.0
    assert s.schemas_dir == Path("/tmp/s")


def test_replication_defaults_follow_the_cluster_and_settings_win() -> None:
    assert Settings().replication(1) == (1, 1)
    assert Settings().replication(3) == (3, 2)
    assert Settings().replication(5) == (3, 2)
    assert Settings(kafka_replication_factor=3, kafka_min_insync_replicas=2).replication(1) == (3, 2)
    with pytest.raises(ValidationError, match="no acks=all write could ever succeed"):
        Settings(kafka_replication_factor=1, kafka_min_insync_replicas=2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kafka_security_protocol": "SASL_SSL"}, "speaks PLAINTEXT only"),
    ({"broker": "kafka://k:9093", "kafka_security_protocol": "SASL_SSL"}, "needs HUB_KAFKA_SASL_USERNAME"),
    ({"broker": "kafka://k:9093", "kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.crt"},
     "no such file"),
    ({"broker": "kafka://k:9092", "kafka_ssl_cafile": __file__}, "does not use TLS"),
    ({"broker": "kafka://k:9093", "kafka_security_protocol": "SSL", "kafka_ssl_certfile": __file__},
     "go together"),
    ({"broker": "kafka://k:9093", "kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI",
      "kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "sasl_mechanism"),
])
def test_unusable_security_combinations_are_refused_at_start(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**kwargs)


def test_the_password_never_shows_in_the_settings_repr() -> None:
    s = Settings(broker="kafka://k:9093", kafka_security_protocol="SASL_SSL", kafka_sasl_username="hub-worker",
                 kafka_sasl_password="s3cret-pw")
    assert "s3cret-pw" not in repr(s) and "s3cret-pw" not in str(s.model_dump())
