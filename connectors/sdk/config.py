"""Connector configuration: YAML validated by pydantic, errors that name the key.

Every connector configuration shares the keys of ``SourceConfig`` or ``SinkConfig``; a connector
adds its own by subclassing (``class FileDropConfig(SourceConfig): inbox: Path``), like Kafka
Connect's ``ConfigDef``: declared, so it is validated and documented before anything runs.
Unknown keys are errors (a typo must not silently fall back to a default). ``${VAR}`` and
``${VAR:-default}`` in string values are replaced from the environment, so secrets stay out of
the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from connectors.sdk.errors import ConfigError
from connectors.sdk.mapping import MappingConfig
from hub import topics

Department = Literal["health", "insurance", "civil_affairs", "revitalization", "charity"]
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


class ConnectorConfig(BaseModel):
    """Keys every connector has."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, description="instance name: offsets key, metrics label, consumer group")
    connector: str = Field(description="plugin name in the `hub.connectors` entry-point group")
    metrics_port: int | None = Field(None, description="serve Prometheus metrics on this port (none: don't)")
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _defaulted: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @property
    def defaulted(self) -> frozenset[str]:
        """Dotted keys whose value came from a ``${VAR:-default}`` fallback (the environment lacked VAR)."""
        return self._defaulted

    @property
    def base_dir(self) -> Path:
        """Folder of the YAML file: relative paths in a configuration are relative to it."""
        return self._base_dir

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self._base_dir / path)


class SourceConfig(ConnectorConfig):
    """Keys of every source connector."""

    department: Department = Field(description="department that owns the data (for ACLs and dead letters)")
    topic: str = Field(description="hub topic the events go to (hub/topics.py)")
    source_id: str | None = Field(None, description="stable name in event ids; default: `name`")
    mapping: MappingConfig | None = Field(None, description="department columns → event fields")
    batch_size: int = Field(500, ge=1, description="records between offset commits")
    poll_interval_seconds: float = Field(5.0, gt=0, description="wait between polls once caught up")

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, v: str) -> str:
        if v not in topics.BY_NAME:
            raise ValueError(f"unknown topic {v!r}; known: {', '.join(sorted(topics.INPUT_TOPICS))}")
        if v.startswith("hub."):
            raise ValueError(f"{v!r} is written by hub processors, not by a source connector")
        return v

    def model_post_init(self, __context: Any) -> None:
        if self.source_id is None:
            self.source_id = self.name

    @property
    def schema_name(self) -> str:
        return topics.BY_NAME[self.topic].schema


class SinkConfig(ConnectorConfig):
    """Keys of every sink connector."""

    topics: list[str] = Field(min_length=1, description="hub topics to deliver")
    group_id: str | None = Field(None, description="consumer group; default `hub-connector-<name>`")
    batch_size: int = Field(100, ge=1, description="records per put()/flush()/commit")
    poll_timeout_seconds: float = Field(1.0, gt=0, description="how long one consumer poll waits")
    filter: dict[str, list[str]] = Field(
        default_factory=dict,
        description="deliver only events whose field is one of the values, e.g. {department: [civil_affairs]}",
    )
    audit_log: Path | None = Field(None, description="audit log of every delivery (hub.audit); default HUB_AUDIT_LOG")

    def wants(self, value: dict[str, Any]) -> bool:
        """Whether an event passes ``filter`` (others are skipped and committed: not this sink's)."""
        return all(str(value.get(f)) in allowed for f, allowed in self.filter.items())

    @field_validator("topics")
    @classmethod
    def _known_topics(cls, v: list[str]) -> list[str]:
        for t in v:
            if t not in topics.BY_NAME:
                raise ValueError(f"unknown topic {t!r}; known: {', '.join(sorted(topics.BY_NAME))}")
        return v

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"hub-connector-{self.name}"


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, where: str, file: str, defaulted: set[str] | None = None) -> Any:
    """Replace ``${VAR}`` from the environment, recursively; a missing variable is an error naming the key.

    Keys whose value used a ``:-default`` fallback are added to ``defaulted`` (development secrets).
    """
    defaulted = set() if defaulted is None else defaulted
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else str(k), file, defaulted) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]", file, defaulted) for i, v in enumerate(value)]
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                defaulted.add(where)
                return default
            raise ConfigError(file, where, f"environment variable {var} is not set (or write ${{{var}:-default}})")
        return _ENV.sub(sub, value)
    return value


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; syntax errors name the line."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise ConfigError(str(path), where, f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "expected a mapping of keys at the top level")
    return data


def validate(model: type[ConnectorConfig], data: dict[str, Any], file: str, base_dir: Path) -> ConnectorConfig:
    """Validate ``data`` with ``model``; the first error names its dotted key, what was expected and found."""
    defaulted: set[str] = set()
    data = _expand(data, "", file, defaulted)
    try:
        cfg = model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(file, *_first_error(exc)) from None
    cfg._base_dir = base_dir
    cfg._defaulted = frozenset(defaulted)
    return cfg


def _first_error(exc: pydantic.ValidationError) -> tuple[str, str]:
    problems = []
    key = ""
    for i, err in enumerate(exc.errors()):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        if i == 0:
            key = loc
        found = err.get("input")
        shown = "" if err["type"] == "missing" or isinstance(found, dict) else f" (found {found!r})"
        if err["type"] == "extra_forbidden":
            problems.append(f"{loc}: unknown key")
        else:
            problems.append(f"{loc}: {err['msg']}{shown}")
    more = f"; also {'; '.join(problems[1:])}" if len(problems) > 1 else ""
    return key, problems[0].split(": ", 1)[1] + more
