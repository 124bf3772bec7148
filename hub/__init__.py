"""Health-relief integration hub: department events in, settlements, risk flags and referrals out.

The public surface is deliberately small (``__all__``); everything else is internal.
Imports are lazy so ``import hub`` costs nothing (no faust, no Kafka client at import time).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "HubError",
    "PolicyError",
    "ValidationError",
    "BrokerError",
    "SchemaError",
    "ConnectorError",
    "load_policy",
    "settle_discharge",
    "topics",
    "__version__",
]

_LAZY = {
    "load_policy": ("hub.policy.loader", "load_policy"),
    "settle_discharge": ("hub.policy.settlement", "settle_discharge"),
    "topics": ("hub.topics", None),
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in {"HubError", "PolicyError", "ValidationError", "BrokerError", "SchemaError", "ConnectorError"}:
        return getattr(importlib.import_module("hub.errors"), name)
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'hub' has no attribute {name!r}")
