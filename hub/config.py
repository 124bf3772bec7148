"""Settings from the environment (prefix ``HUB_``), validated by pydantic-settings.

One object, read once at start, so a typo in an environment variable is a clear error at start
rather than a surprise at 3 a.m.: an environment variable that starts with ``HUB_`` and is neither a
field here nor listed in :data:`NOT_SETTINGS` stops the process with the nearest known name. Every
setting has a default that works on the embedded broker.

Kafka client security (``HUB_KAFKA_*``) lives here too, and :mod:`hub.clients` turns it into the
keyword arguments of aiokafka and kafka-python, so every client of the hub — worker, counter API,
doctor, replay, connectors — is built from the same settings.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PSEUDONYM_KEY = "dev-only-pseudonym-key-do-not-use-in-production"
DEV_EDGE_KEY = "ZGV2LW9ubHktZWRnZS1rZXktMzItYnl0ZXMtbG9uZyE="  # base64 of 32 bytes, development only
ENV_PREFIX = "HUB_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

NOT_SETTINGS: Mapping[str, str] = {
    # ${VAR:-default} references in the example connector configs (connectors/examples/*.yaml): the
    # connector process reads them through its YAML, not through Settings.
    "HUB_INSURANCE_DB_URL": "connectors/examples/insurance_enrolment.yaml",
    "HUB_CIVIL_AFFAIRS_INBOX_URL": "connectors/examples/civil_affairs_referral_inbox.yaml",
    "HUB_CIVIL_AFFAIRS_WEBHOOK_SECRET": "connectors/examples/civil_affairs_referral_inbox.yaml",
    "HUB_HIS_DB_URL": "connectors/examples/hospital_admissions.yaml",
    "HUB_TOKEN_CIVIL_AFFAIRS": "connectors/examples/referral_updates.yaml",
    "HUB_TOKEN_HEALTH": "connectors/examples/referral_updates.yaml",
    "HUB_TOKEN_INSURANCE": "connectors/examples/referral_updates.yaml",
    "HUB_TOKEN_REVITALIZATION": "connectors/examples/referral_updates.yaml",
    "HUB_TOKEN_CHARITY": "connectors/examples/referral_updates.yaml",
    "HUB_INSURANCE_REPORT_DB_URL": "connectors/examples/settlements_to_insurance_db.yaml",
    "HUB_TOKEN_WUHUA_PEOPLES_HOSPITAL": "connectors/examples/hospital_discharges.yaml",
    "HUB_TOKEN_SHALANG_HEALTH_CENTER": "connectors/examples/hospital_discharges.yaml",
    # test knobs, read by the test suite only
    "HUB_DIFFERENTIAL_EXAMPLES": "tests/unit/test_settlement_differential.py",
}
"""``HUB_*`` variables that are read, but not as hub settings: name → where they are read.

Why a list and not a pattern: the point of refusing unknown ``HUB_*`` names is to catch a typo
(a misspelt ``HUB_KAFKA_SASL_PASSWORD``); a pattern such as ``HUB_TOKEN_*`` would let typos of it through. A
department's own connector config should reference variables without the ``HUB_`` prefix (e.g.
``${HIS_DB_URL}``), or add its name here. ``tests/unit/test_config.py`` checks this list against
every ``${HUB_…}`` in the example configs and every ``HUB_…`` the code reads."""


class SettingsError(ValueError):
    """The environment holds a ``HUB_*`` variable the hub does not know, or a setting is unusable."""


class Settings(BaseSettings):
    """Hub settings. ``HUB_BROKER=embedded`` (default) starts noida-db; ``kafka://h:p[,h:p]`` uses Kafka."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    # -- where things are -------------------------------------------------------------------------
    broker: str = Field("embedded", description="'embedded' or kafka://host:port[,host:port]")
    data_dir: Path = Field(Path(".hub-data"), description="embedded broker data and worker state")
    policy_dir: Path | None = Field(None, description="folder of policy TOML files; default: the bundled regions")
    schemas_dir: Path | None = Field(None, description="folder of .avsc schemas; default: the installed ones")
    app_id: str = Field("health-relief-hub", pattern=r"^[A-Za-z0-9._-]+$",
                        description="consumer group, prefix of internal topics and transactional ids")

    # -- secrets ----------------------------------------------------------------------------------
    pseudonym_key: str = Field(DEV_PSEUDONYM_KEY, description="HMAC key for person_token (keep secret)")
    edge_key: str = Field(DEV_EDGE_KEY, description="base64 AES-256 key encrypting edge dead-letter originals")

    # -- processes --------------------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="address the Prometheus exporter binds (0.0.0.0 in pods)")
    metrics_port: int = Field(9308, description="Prometheus exporter port of every hub process (0 = any free port)")
    api_port: int = Field(8080, description="hospital counter API port (0 = any free port)")
    web_port: int = Field(6066, description="faust worker web port")
    store: str = Field("memory://", description="faust table store: memory:// or rocksdb://")
    log_level: str = Field("info", description="debug, info, warning or error")
    skip_probe: bool = Field(False, description="a parent process already ran the conformance probe")

    # -- the processor ----------------------------------------------------------------------------
    region: str = Field("532503", description="home pooling region whose [risk]/[referrals] rules apply")
    wall_clock: bool = Field(True, description="false: rules run on event time only (replay, simulator)")
    batch_max: int = Field(2000, ge=1, description="records per processor batch")
    tick_seconds: float = Field(5.0, gt=0, description="seconds between the processor's timer ticks")

    # -- Kafka: replication of every topic the hub creates ---------------------------------------
    kafka_replication_factor: int | None = Field(
        None, ge=1, description="replication factor of the topics the hub creates; default min(3, brokers)")
    kafka_min_insync_replicas: int | None = Field(
        None, ge=1, description="min.insync.replicas of those topics; default replication factor - 1 (≥ 1)")

    # -- Kafka: client security (hub.clients) ----------------------------------------------------
    kafka_security_protocol: SecurityProtocol = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT "
                                                      "or SASL_SSL (production: SASL_SSL)")
    kafka_sasl_mechanism: SaslMechanism = Field("SCRAM-SHA-512", description="SASL mechanism for SASL_*")
    kafka_sasl_username: str | None = Field(None, description="SASL user (the KafkaUser name)")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (from the user's Secret)")
    kafka_ssl_cafile: Path | None = Field(None, description="PEM of the cluster CA; default: the system's CAs")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    kafka_ssl_keyfile: Path | None = Field(None, description="client key (PEM) for mutual TLS")
    kafka_ssl_password: SecretStr | None = Field(None, description="password of the client key, if encrypted")
    kafka_ssl_check_hostname: bool = Field(True, description="verify the broker's name against its certificate")

    # -- the edge: counter API credentials, audit log ------------------------------------------
    api_tokens: dict[str, str] = Field(
        default_factory=lambda: {"H532503001": "dev-token-counter-H532503001"},
        description="counter API credentials: hospital code → bearer token, JSON in HUB_API_TOKENS "
                    "(the default is a development credential, refused outside the embedded broker)")
    audit_key: str = Field("dev-only-audit-key-do-not-use-in-production",
                           description="HMAC key of the audit log's hash chain (HUB_AUDIT_KEY; keep it from the "
                                       "log's writers' admins)")
    audit_log: Path | None = Field(None, description="audit log every sink connector appends its deliveries to "
                                                     "(HUB_AUDIT_LOG; none: deliveries are not audited)")

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        if v != "embedded" and not v.startswith("kafka://"):
            raise ValueError("HUB_BROKER must be 'embedded' or kafka://host:port[,host:port]")
        return v

    @model_validator(mode="after")
    def _usable(self) -> Settings:
        """Combinations that cannot work, refused at start with what to change."""
        _refuse_unknown_env(os.environ)
        tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if self.broker == "embedded" and self.kafka_security_protocol != "PLAINTEXT":
            raise ValueError("the embedded broker (HUB_BROKER=embedded) speaks PLAINTEXT only: unset "
                             "HUB_KAFKA_SECURITY_PROTOCOL or point HUB_BROKER at a kafka:// cluster")
        if sasl and (not self.kafka_sasl_username or self.kafka_sasl_password is None):
            raise ValueError(f"HUB_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                             "HUB_KAFKA_SASL_USERNAME and HUB_KAFKA_SASL_PASSWORD")
        if not tls:
            given = [n for n in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
                     if getattr(self, n) is not None]
            if given:
                raise ValueError(f"{', '.join('HUB_' + n.upper() for n in given)} set but "
                                 f"HUB_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} does not use TLS "
                                 "(use SSL or SASL_SSL)")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("HUB_KAFKA_SSL_CERTFILE and HUB_KAFKA_SSL_KEYFILE go together (mutual TLS)")
        for n in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            path = getattr(self, n)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"HUB_{n.upper()}={path}: no such file")
        rf, isr = self.kafka_replication_factor, self.kafka_min_insync_replicas
        if rf is not None and isr is not None and isr > rf:
            raise ValueError(f"HUB_KAFKA_MIN_INSYNC_REPLICAS={isr} exceeds HUB_KAFKA_REPLICATION_FACTOR={rf}: "
                             "no acks=all write could ever succeed")
        return self

    @property
    def uses_dev_pseudonym_key(self) -> bool:
        return self.pseudonym_key == DEV_PSEUDONYM_KEY

    def bootstrap_servers(self) -> list[str]:
        """host:port list of a kafka:// URL (embedded brokers report theirs when started)."""
        if self.broker == "embedded":
            raise ValueError("the embedded broker's address is known only once it is started")
        return [hp for hp in self.broker.removeprefix("kafka://").split(",") if hp]

    def replication(self, brokers: int) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) of the topics the hub creates on ``brokers`` brokers.

        Defaults: min(3, brokers) copies, and one fewer must acknowledge an ``acks=all`` write (2 of 3
        in production, 1 on the embedded broker). Explicit settings win, so a cluster whose policy is
        RF 3 / ISR 2 refuses a misconfigured worker at start (the probe writes with the same values).
        """
        rf = self.kafka_replication_factor or max(1, min(3, brokers))
        isr = self.kafka_min_insync_replicas or max(1, rf - 1)
        return rf, isr


def setting_names() -> set[str]:
    """Every environment variable name that is a hub setting (``HUB_BROKER``, …)."""
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def _refuse_unknown_env(environ: Mapping[str, str]) -> None:
    known = setting_names() | set(NOT_SETTINGS)
    unknown = sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
    if not unknown:
        return
    lines = []
    for name in unknown:
        near = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.75)
        lines.append(f"{name}" + (f" (did you mean {near[0]}?)" if near else ""))
    raise SettingsError(
        f"unknown environment variable(s): {'; '.join(lines)}. A HUB_* variable the hub does not know is an "
        f"error, so a typo cannot silently fall back to a default. Settings: {', '.join(sorted(setting_names()))} "
        "(README.md, Configuration)."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
