"""How much memory a worker's state takes per person, with the memory store and with RocksDB (issue 18e).

What it does: N persons of a province's roster — each a poverty status and a 2025 enrolment, both on one
day, so every input id is still remembered (§8.2's 30-day window): the worst case for memory — go through
the person processor's own rules and task state (``PersonLogic``, ``TaskState``, four tasks as a worker that
owns every partition), in batches as the worker applies them, with ``HUB_STORE``'s backend. The process's
resident memory is read before and after (after a garbage collection), and per person.

Why in-process and not through a broker: the figure wanted is what the *worker's state* costs per person;
the embedded broker would have to hold every input and state record too (noida-db keeps everything in
memory), which is the broker's memory, not the worker's. The worker process adds its fixed runtime (faust,
aiokafka: ≈100 MB, see ``--worker-baseline``) on top.

Checks before reporting: every person is in the state, and a task restored from the state records it wrote
holds the same number of persons.

    python benchmarks/state_size.py --persons 1000000 --store memory://
    python benchmarks/state_size.py --persons 10000000 --store rocksdb://
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub import codec  # noqa: E402
from hub.processors import build_logic  # noqa: E402
from hub.processors.partitioning import partition_for  # noqa: E402
from hub.processors.person import decode_input  # noqa: E402
from hub.processors.store import MemoryBackend, open_backend  # noqa: E402
from hub.timeutil import SHANGHAI  # noqa: E402
from hub.topics import PARTITIONS  # noqa: E402

STATUS = "revitalization.poverty-status.v1"
ENROL = "insurance.enrollments.v1"
DAY = datetime(2025, 1, 6, 8, tzinfo=SHANGHAI)
JAN1 = datetime(2026, 1, 1, 0, 0, 1, tzinfo=SHANGHAI)


def token(i: int) -> str:
    return "p_" + hashlib.blake2b(i.to_bytes(8, "big"), digest_size=16).hexdigest()


def records(i: int) -> list[tuple[str, bytes, bytes]]:
    """A person's status and enrolment as the connectors write them (Avro, keyed by token)."""
    p = token(i)
    at = DAY + timedelta(seconds=i % 36_000)
    status = {"event_id": f"st-{i}", "occurred_at": at, "person_token": p,
              "categories": ["poverty_alleviated" if i % 3 else "monitored"], "household_income_fen": None,
              "region_code": "532503"}
    enrol = {"event_id": f"en-{i}", "occurred_at": at, "person_token": p, "year": 2025, "enrolled": True,
             "subsidy_category": None, "insured_region": "532503"}
    key = p.encode()
    return [(STATUS, key, codec.encode("hub.revitalization.PovertyStatusChanged", status)),
            (ENROL, key, codec.encode("hub.insurance.EnrollmentChanged", enrol))]


def run(persons: int, store: str, batch: int, jan1: bool = False) -> dict[str, float]:
    proc = psutil.Process()
    logic = build_logic()
    tmp = Path(tempfile.mkdtemp(prefix="hub-state-size-"))
    tasks = {p: logic.new_task(p, open_backend(store, tmp, "bench", p)) for p in range(PARTITIONS)}
    gc.collect()
    rss0 = proc.memory_info().rss
    pending: dict[int, list] = {p: [] for p in tasks}
    offsets: dict[tuple[str, int], int] = {}
    written: dict[int, dict[bytes, bytes | None]] = {p: {} for p in tasks}
    started = time.perf_counter()
    cpu0 = time.process_time()

    def apply(p: int) -> None:
        result = logic.process(tasks[p], pending[p], 0.0)
        if persons <= 20_000:  # keep the records only where the restore check below can afford them
            written[p].update(result.state)
        pending[p] = []

    for i in range(persons):
        for topic, key, value in records(i):
            p = partition_for(key, PARTITIONS)
            o = offsets.get((topic, p), 0)
            offsets[(topic, p)] = o + 1
            pending[p].append(decode_input(topic, p, o, key, value, None, logic.schema_store))
            if len(pending[p]) >= batch:
                apply(p)
        if i and i % 1_000_000 == 0:
            print(f"  {i:,} persons, {(proc.memory_info().rss - rss0) / 2**20:,.0f} MB, "
                  f"{time.perf_counter() - started:,.0f} s", flush=True)
    for p in tasks:
        apply(p)
    cpu = time.process_time() - cpu0
    elapsed = time.perf_counter() - started
    gc.collect()
    rss = proc.memory_info().rss
    held = sum(len(t.persons) for t in tasks.values())
    if held != persons:
        raise AssertionError(f"{held} persons in the state, {persons} expected")
    if written[0]:  # a restored task holds what the live one held
        copy = logic.restore_task(0, ((k, v) for k, v in written[0].items()), MemoryBackend())
        if len(copy.persons) != len(tasks[0].persons):
            raise AssertionError("a task restored from its state records differs from the live one")
    new_year: dict[str, float] = {}
    if jan1:  # §5.1: at 1 January every person seen before is judged (uninsured for the new year) at one instant
        t0 = time.perf_counter()
        outputs = state_records = 0
        batches = 0
        for task in tasks.values():  # as the worker does: the tick, then batches that go on with the firing
            result = logic.tick(task, JAN1.timestamp(), fire_limit=batch)
            while True:
                outputs += len(result.outputs)
                state_records += len(result.state)
                batches += 1
                if task.engine.firing is None:
                    break
                result = logic.process(task, [], 0.0, fire_limit=batch)
        flags = outputs  # every person is enrolled for 2025 only: each one's new-year judging raises a flag
        if flags < persons:
            raise AssertionError(f"1 January judged {flags} outputs for {persons} persons")
        new_year = {"jan1_seconds": time.perf_counter() - t0, "jan1_outputs": outputs, "jan1_batches": batches,
                    "jan1_state_records": state_records,
                    "peak_rss_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0) / 2**20}
        gc.collect()
        new_year["after_rss_mb"] = (proc.memory_info().rss - rss0) / 2**20
    disk = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    due_in_memory = sum(t.engine.due.in_memory for t in tasks.values())
    due_total = sum(len(t.engine.due) for t in tasks.values())
    recent_ids = sum(len(t.recent) for t in tasks.values())
    for t in tasks.values():
        t.close()
    return {"persons": persons, "rss_mb": (rss - rss0) / 2**20, "bytes_per_person": (rss - rss0) / persons,
            "disk_mb": disk / 2**20, "seconds": elapsed, "cpu_us_per_person": cpu / persons * 1e6,
            "recent_ids": recent_ids, "due_in_memory": due_in_memory, "due_total": due_total, **new_year}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=200_000)
    ap.add_argument("--store", default="memory://", help="memory:// or rocksdb://")
    ap.add_argument("--batch", type=int, default=2000, help="records per task batch (HUB_BATCH_MAX)")
    ap.add_argument("--new-year", action="store_true",
                    help="then move every task's clock to 1 January 2026, when every person is judged at one "
                         "instant (in batches of --batch subjects, as the worker does), and report the peak memory")
    args = ap.parse_args()
    load0 = psutil.getloadavg()
    row = run(args.persons, args.store, args.batch, args.new_year)
    row["load_start"], row["load_end"] = load0[0], psutil.getloadavg()[0]
    print(f"{args.store} {row['persons']:,} persons: +{row['rss_mb']:,.0f} MB RSS "
          f"({row['bytes_per_person']:,.0f} B/person), disk {row['disk_mb']:,.0f} MB, "
          f"{row['recent_ids']:,} remembered ids, {row['due_total']:,} due times ({row['due_in_memory']:,} in memory), "
          f"{row['seconds']:,.0f} s "
          f"({row['cpu_us_per_person']:,.0f} µs CPU/person); load {row['load_start']:.1f} → {row['load_end']:.1f}")
    if "jan1_seconds" in row:
        print(f"  1 January: {row['jan1_outputs']:,} outputs and {row['jan1_state_records']:,} state records in "
              f"{row['jan1_batches']:,} batches, {row['jan1_seconds']:,.0f} s; peak RSS +{row['peak_rss_mb']:,.0f} MB "
              f"({row['peak_rss_mb'] * 2**20 / row['persons']:,.0f} B/person), after it +{row['after_rss_mb']:,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
