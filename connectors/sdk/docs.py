"""Configuration tables for connectors/README.md, generated from the pydantic models.

Why: a documented property that no longer exists, or a new one left undocumented, is caught by
tests/connectors/test_sdk.py, which checks the README holds every row this module renders.
Run ``python -m connectors.sdk.docs`` to print the tables.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from connectors.sdk import plugins


def _default(info: Any) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if value is None:
        return "none"
    text = f"`{value}`" if not isinstance(value, str) else f'`"{value}"`'
    return text.replace("|", "\\|")


def config_table(model: type[BaseModel]) -> str:
    """A Markdown table: property | default | meaning."""
    rows = ["| property | default | meaning |", "|---|---|---|"]
    for name, info in model.model_fields.items():
        meaning = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {_default(info)} | {meaning} |")
    return "\n".join(rows)


def all_tables() -> dict[str, str]:
    return {name: config_table(p.load().config_model) for name, p in plugins.discover().items()}


if __name__ == "__main__":
    for name, table in all_tables().items():
        print(f"### {name}\n\n{table}\n")
