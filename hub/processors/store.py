"""Where a task keeps its subjects: serialized, in memory or in RocksDB, with a bounded cache of live objects.

Why not a dict of objects: a person's state as Python objects (dicts, sets, dataclasses, datetimes) costs
≈8 KB; as the JSON the state topic carries, a few hundred bytes. A province's worker holds millions of
persons, most of them untouched for months, so a task keeps each subject as those bytes — the changelog
value itself — and decodes it on access, keeping only a bounded number of recently used subjects decoded
(an LRU). With ``HUB_STORE=rocksdb://`` the bytes live in a RocksDB database per task on local disk, so
memory is the cache and RocksDB's block cache, whatever the number of persons.

The store is the engine's ``MutableMapping``: ``store[k] = state`` marks ``k`` dirty; :meth:`flush` encodes
every dirty subject once, writes it to the backend and returns it for the state topic. A dirty subject is
never evicted before it is flushed. Iterating the store lists every key without decoding anything.
"""

from __future__ import annotations

import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Backend", "MemoryBackend", "RocksBackend", "SubjectStore", "open_backend"]

S = TypeVar("S")

CACHE_SIZE = 4_000
"""Decoded subjects kept per store and task: a batch touches at most ``HUB_BATCH_MAX`` (2,000) subjects; a
decoded person costs ≈3 KB against ≈0.4 KB stored, so the cache is what keeps a million persons small."""


class Backend(Protocol):
    """Serialized subjects of one task, by namespace (``p``, ``f``, ``l``): bytes in, bytes out."""

    def get(self, ns: str, key: str) -> bytes | None: ...

    def put(self, ns: str, key: str, value: bytes) -> None: ...

    def delete(self, ns: str, key: str) -> None: ...

    def keys(self, ns: str) -> Iterator[str]: ...

    def count(self, ns: str) -> int: ...

    def close(self) -> None: ...


class MemoryBackend:
    """A dict per namespace: the default (``HUB_STORE=memory://``)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, bytes]] = {}

    def _ns(self, ns: str) -> dict[str, bytes]:
        d = self.data.get(ns)
        if d is None:
            d = self.data[ns] = {}
        return d

    def get(self, ns: str, key: str) -> bytes | None:
        return self._ns(ns).get(key)

    def put(self, ns: str, key: str, value: bytes) -> None:
        self._ns(ns)[key] = value

    def delete(self, ns: str, key: str) -> None:
        self._ns(ns).pop(key, None)

    def keys(self, ns: str) -> Iterator[str]:
        return iter(list(self._ns(ns)))

    def count(self, ns: str) -> int:
        return len(self._ns(ns))

    def close(self) -> None:
        self.data.clear()


ROCKS_WRITE_BUFFER = 16 * 2**20
"""Bytes of one RocksDB memtable of a task (two at most): writes come in batches of a few thousand subjects."""
ROCKS_CACHE = 256 * 2**20
"""Bytes of the block cache every task's RocksDB shares (data blocks): the hot subjects are decoded in the
SubjectStore's own cache anyway; this bounds what the files' data costs in memory."""

_CACHE: Any = None


def _rocks_cache() -> Any:
    """The worker's one RocksDB block cache (created on first use)."""
    global _CACHE
    if _CACHE is None:
        from rocksdict import Cache

        _CACHE = Cache(ROCKS_CACHE)
    return _CACHE


class RocksBackend:
    """One RocksDB database per task (``HUB_STORE=rocksdb://``): keys ``<ns>:<key>``, values as given.

    The database is rebuilt from the state topic whenever the task is restored (the topic is the one source
    of truth), so it is a cache on disk, never read on its own: the folder is wiped at open and at close.
    """

    def __init__(self, path: Path) -> None:
        from rocksdict import BlockBasedOptions, Options, Rdict, WriteOptions

        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        # RocksDB's default memtables (two of 64 MB) cost ≈120 MB per task before the first person: 16 MB here.
        # Index and filter blocks stay outside the block cache, in memory for as long as their file lives (as
        # RocksDB and Kafka Streams do by default): ≈15 bytes per key, and every lookup of a subject not yet
        # seen — most lookups while a roster is loaded — is answered by a filter in memory, never by a read.
        # Inside the shared cache, data blocks evicted them once the files outgrew it, and each miss then read
        # filter blocks back from the files: a 10 M-person load slowed from 6 to 22 minutes per million.
        options.set_write_buffer_size(ROCKS_WRITE_BUFFER)
        options.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_block_cache(_rocks_cache())
        table.set_cache_index_and_filter_blocks(False)
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        self.path = path
        self.db = Rdict(str(path), options)
        # No write-ahead log: the folder is wiped at every open, so a log could never be replayed — it would
        # only double every write.
        write = WriteOptions()
        write.disable_wal = True
        self.db.set_write_options(write)

    @staticmethod
    def _k(ns: str, key: str) -> bytes:
        return f"{ns}:{key}".encode()

    def get(self, ns: str, key: str) -> bytes | None:
        value = self.db.get(self._k(ns, key))
        return None if value is None else bytes(value)

    # put and delete are blind writes: a read before each (to keep a count, say) costs a lookup through every
    # level, which once the database outgrows its cache was over a quarter of a 10 M-person load.
    def put(self, ns: str, key: str, value: bytes) -> None:
        self.db[self._k(ns, key)] = value

    def delete(self, ns: str, key: str) -> None:
        del self.db[self._k(ns, key)]

    def keys(self, ns: str) -> Iterator[str]:
        prefix = f"{ns}:".encode()
        it = self.db.iter()
        it.seek(prefix)
        while it.valid():
            k = bytes(it.key())
            if not k.startswith(prefix):
                break
            yield k[len(prefix):].decode()
            it.next()

    def count(self, ns: str) -> int:
        """Exact, by a scan of the namespace: for summaries (a restore's log line, benchmarks), never per record."""
        prefix = f"{ns}:".encode()
        it = self.db.iter()
        it.seek(prefix)
        n = 0
        while it.valid() and bytes(it.key()).startswith(prefix):
            n += 1
            it.next()
        return n

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)


class BackendMap(MutableMapping[str, bytes]):
    """One namespace of a backend as a mapping (a task's ``x:`` index when its backend is RocksDB)."""

    def __init__(self, backend: Backend, ns: str) -> None:
        self.backend = backend
        self.ns = ns

    def __getitem__(self, key: str) -> bytes:
        value = self.backend.get(self.ns, key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: bytes) -> None:
        self.backend.put(self.ns, key, value)

    def __delitem__(self, key: str) -> None:
        if self.backend.get(self.ns, key) is None:
            raise KeyError(key)
        self.backend.delete(self.ns, key)

    def __iter__(self) -> Iterator[str]:
        return self.backend.keys(self.ns)

    def __len__(self) -> int:
        return self.backend.count(self.ns)

    def pop(self, key: str, *default: Any) -> Any:
        """One read and a delete (``MutableMapping.pop`` reads the key twice before deleting it)."""
        value = self.backend.get(self.ns, key)
        if value is None:
            if default:
                return default[0]
            raise KeyError(key)
        self.backend.delete(self.ns, key)
        return value


def open_backend(store: str, data_dir: Path, app_id: str, partition: int) -> Backend:
    """The backend ``HUB_STORE`` names: ``memory://`` or ``rocksdb://`` (under ``<data dir>/state``)."""
    if store.startswith("rocksdb://"):
        return RocksBackend(Path(data_dir) / "state" / f"{app_id}-{partition}")
    if store.startswith("memory://"):
        return MemoryBackend()
    raise ValueError(f"HUB_STORE={store!r}: expected memory:// or rocksdb://")


class SubjectStore(MutableMapping[str, S], Generic[S]):
    """The engine's map of subjects, over a :class:`Backend` namespace (see the module docstring).

    Decoded subjects are either *written* (``store[k] = v`` since the last flush: kept until flushed) or
    *clean* (a bounded LRU: evicting one costs nothing, its bytes are in the backend).
    """

    def __init__(self, backend: Backend, ns: str, decode: Callable[[bytes], S], encode: Callable[[S], bytes],
                 cache_size: int | None = None) -> None:
        self.backend = backend
        self.ns = ns
        self._decode = decode
        self._encode = encode
        self.cache: OrderedDict[str, S] = OrderedDict()
        self.written: dict[str, S] = {}
        self.cache_size = CACHE_SIZE if cache_size is None else cache_size

    @property
    def dirty(self) -> set[str]:
        """Keys written since the last flush."""
        return set(self.written)

    # -- MutableMapping ----------------------------------------------------------------------------

    def __getitem__(self, key: str) -> S:
        value = self.written.get(key)
        if value is not None:
            return value
        value = self.cache.get(key)
        if value is not None:
            self.cache.move_to_end(key)
            return value
        raw = self.backend.get(self.ns, key)
        if not raw:
            raise KeyError(key)
        value = self._decode(raw)
        self.cache[key] = value
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: str, value: S) -> None:
        if key not in self.written and key not in self.cache:
            # A placeholder, so a new key is counted and listed at once. Blind (no read first): for a key the
            # backend holds, it stands until the flush a few lines on — every read looks at ``written`` first.
            self.backend.put(self.ns, key, b"")
        self.written[key] = value
        self.cache.pop(key, None)

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("subjects are never deleted (a seen person stays seen, §7)")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.written or key in self.cache
                                         or bool(self.backend.get(self.ns, key)))

    def __iter__(self) -> Iterator[str]:
        return self.backend.keys(self.ns)

    def __len__(self) -> int:
        return self.backend.count(self.ns)

    def values(self) -> Iterator[S]:  # type: ignore[override]
        for key in self.backend.keys(self.ns):
            yield self[key]

    # -- the task's side ---------------------------------------------------------------------------

    def decoded(self, key: str) -> S:
        """A written subject as the engine left it (for indexing it before :meth:`flush`)."""
        return self.written[key]

    def flush(self) -> dict[str, bytes]:
        """Encode every written subject, write it to the backend; return ``{key: bytes}`` for the state topic."""
        out: dict[str, bytes] = {}
        for key, value in self.written.items():
            raw = self._encode(value)
            self.backend.put(self.ns, key, raw)
            out[key] = raw
            self.cache[key] = value
        self.written.clear()
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return out
