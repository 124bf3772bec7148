"""Settings from the environment (prefix ``HUB_``), validated by pydantic-settings.

One object, read once at start, so a typo in an environment variable is a clear error at start
rather than a surprise at 3 a.m. Every setting has a default that works on the embedded broker.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PSEUDONYM_KEY = "dev-only-pseudonym-key-do-not-use-in-production"
DEV_EDGE_KEY = "ZGV2LW9ubHktZWRnZS1rZXktMzItYnl0ZXMtbG9uZyE="  # base64 of 32 bytes, development only


class Settings(BaseSettings):
    """Hub settings. ``HUB_BROKER=embedded`` (default) starts noida-db; ``kafka://h:p[,h:p]`` uses Kafka."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    broker: str = Field("embedded", description="'embedded' or kafka://host:port[,host:port]")
    data_dir: Path = Field(Path(".hub-data"), description="embedded broker data and worker state")
    pseudonym_key: str = Field(DEV_PSEUDONYM_KEY, description="HMAC key for person_token (keep secret)")
    edge_key: str = Field(DEV_EDGE_KEY, description="base64 AES-256 key encrypting edge dead-letter originals")
    policy_dir: Path | None = Field(None, description="folder of policy TOML files; default: the bundled regions")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9308, description="Prometheus exporter port of `hub up` (0 = any free port)")
    api_port: int = Field(8080, description="hospital counter API port (0 = any free port)")
    web_port: int = Field(6066, description="faust worker web port")
    store: str = Field("memory://", description="faust table store: memory:// or rocksdb://")
    log_level: str = "info"
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

    @property
    def uses_dev_pseudonym_key(self) -> bool:
        return self.pseudonym_key == DEV_PSEUDONYM_KEY

    def bootstrap_servers(self) -> list[str]:
        """host:port list of a kafka:// URL (embedded brokers report theirs when started)."""
        if self.broker == "embedded":
            raise ValueError("the embedded broker's address is known only once it is started")
        return [hp for hp in self.broker.removeprefix("kafka://").split(",") if hp]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
