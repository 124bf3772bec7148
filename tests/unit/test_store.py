"""Where a task keeps its subjects: serialized in memory or RocksDB, a bounded cache of decoded ones.

What must hold whatever the backend: a written subject is never lost before it is flushed, however small
the cache; a flush returns exactly the written subjects as stored bytes; a key is listed and counted as soon
as it is written; a restored backend (bytes in, nothing decoded) answers as the one that wrote them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.processors.store import MemoryBackend, RocksBackend, SubjectStore


def codec() -> tuple:
    return (lambda raw: json.loads(raw), lambda obj: json.dumps(obj, sort_keys=True).encode())


@pytest.fixture(params=["memory", "rocksdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    b = MemoryBackend() if request.param == "memory" else RocksBackend(tmp_path / "task-0")
    yield b
    b.close()


def test_written_subjects_survive_any_cache_and_flush_once(backend) -> None:
    decode, encode = codec()
    store = SubjectStore(backend, "p", decode, encode, cache_size=3)
    for i in range(50):
        store[f"s{i}"] = {"n": i}
    assert len(store) == 50 and "s7" in store and "nope" not in store
    assert store["s42"] == {"n": 42}  # written, not flushed: still there although the cache holds 3
    flushed = store.flush()
    assert set(flushed) == {f"s{i}" for i in range(50)} and flushed["s3"] == encode({"n": 3})
    assert store.flush() == {}
    assert len(store.cache) <= 3
    assert store["s10"] == {"n": 10}  # decoded again from the backend
    assert sorted(store) == sorted(f"s{i}" for i in range(50))


def test_a_subject_changed_in_place_is_written_only_when_set_again(backend) -> None:
    decode, encode = codec()
    store = SubjectStore(backend, "p", decode, encode, cache_size=100)
    store["a"] = {"n": 1}
    store.flush()
    obj = store["a"]
    obj["n"] = 2
    store["a"] = obj
    assert store.flush() == {"a": encode({"n": 2})}


def test_restored_bytes_answer_as_the_store_that_wrote_them(backend, tmp_path: Path) -> None:
    decode, encode = codec()
    store = SubjectStore(backend, "p", decode, encode)
    for i in range(20):
        store[f"k{i}"] = [i]
    flushed = store.flush()
    other = MemoryBackend()
    for key, raw in flushed.items():
        other.put("p", key, raw)
    copy = SubjectStore(other, "p", decode, encode)
    assert {k: copy[k] for k in copy} == {k: store[k] for k in store}
    assert len(copy) == 20


_KEYS = st.sampled_from(["a", "b", "c", "ab", "b:c"])
_NS = st.sampled_from(["p", "x", "xp"])  # "x" and "xp": one namespace a prefix of the other's name
_OPS = st.lists(st.tuples(st.sampled_from(["put", "delete"]), _NS, _KEYS, st.binary(max_size=3)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_a_backend_answers_as_a_dict_whatever_the_writes(tmp_path_factory: pytest.TempPathFactory, ops) -> None:
    """Blind puts and deletes (overwrites, deletes of absent keys) never skew a get, a listing or a count.

    RocksBackend writes without reading first and counts by a scan; a count kept on the side would drift on
    exactly these sequences.
    """
    model: dict[str, dict[str, bytes]] = {}
    for backend in (MemoryBackend(), RocksBackend(tmp_path_factory.mktemp("model") / "task-0")):
        model.clear()
        try:
            for op, ns, key, value in ops:
                if op == "put":
                    backend.put(ns, key, value)
                    model.setdefault(ns, {})[key] = value
                else:
                    backend.delete(ns, key)
                    model.get(ns, {}).pop(key, None)
            for ns in ("p", "x", "xp", "q"):
                want = model.get(ns, {})
                assert backend.count(ns) == len(want), (type(backend).__name__, ns)
                assert sorted(backend.keys(ns)) == sorted(want)
                assert {k: backend.get(ns, k) for k in ("a", "b", "c", "ab", "b:c")} == {
                    k: want.get(k) for k in ("a", "b", "c", "ab", "b:c")}
        finally:
            backend.close()


def test_a_subject_evicted_then_set_again_reads_as_set_and_flushes_its_bytes(backend) -> None:
    """Setting a subject the cache no longer holds leaves a placeholder in the backend until the flush."""
    decode, encode = codec()
    store = SubjectStore(backend, "p", decode, encode, cache_size=1)
    store["a"] = {"n": 1}
    store["b"] = {"n": 2}
    store.flush()  # the cache keeps only "b": "a" is in the backend alone
    store["a"] = {"n": 3}
    assert store["a"] == {"n": 3} and "a" in store and len(store) == 2
    assert store.flush() == {"a": encode({"n": 3})}
    assert backend.get("p", "a") == encode({"n": 3})
    store.cache.clear()
    assert store["a"] == {"n": 3}
