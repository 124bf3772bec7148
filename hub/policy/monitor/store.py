"""Subject stores: where the engine keeps one state per person token or facility code.

Why a codec adapter: ``hub monitor`` keeps live objects in a plain dict, but a stream processor's
table (faust, RocksDB, a changelog) holds JSON values. ``JsonStore`` lets the engine read and write
``PersonState``/``FacilityState`` objects through such a table. The engine always writes a subject
back after touching it, so a copy-on-read store like this one stays correct.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

S = TypeVar("S")


class JsonStore(MutableMapping[str, S], Generic[S]):
    """A ``MutableMapping[str, state]`` over a backing ``MutableMapping[str, dict]``."""

    def __init__(self, backing: MutableMapping[str, dict[str, Any]],
                 decode: Callable[[dict[str, Any]], S]) -> None:
        self.backing = backing
        self._decode = decode

    def __getitem__(self, key: str) -> S:
        return self._decode(self.backing[key])

    def __setitem__(self, key: str, value: S) -> None:
        self.backing[key] = value.to_dict()  # type: ignore[attr-defined]

    def __delitem__(self, key: str) -> None:
        del self.backing[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.backing)

    def __len__(self) -> int:
        return len(self.backing)
