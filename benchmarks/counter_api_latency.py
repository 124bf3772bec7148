"""Hospital counter API latency (issue 18, item 1(c)): how long a cashier waits for a one-stop settlement (一站式结算).

Why this measure: the counter API answers *through* the pipeline (produce the discharge, wait for the person
processor's settlement record), so its latency is the pipeline's end-to-end latency as a person at the counter
feels it: HTTP + produce + the worker's pick-up, rules and transaction + the API's tail of the outputs.

What it does: starts its own embedded broker, the catalogue's topics, one worker (``hub worker``) and the API as
its own process (``python -m hub.api``, as ``hub api`` runs it), enrols ``--persons`` persons (脱贫人口, insured
in Mengzi 532503, enrolled for 2025), then for each rate sends discharges open-loop at a steady rate for
``--seconds`` (a request's latency counts from the moment it was *due*, so a stalled client cannot hide
queueing), and finally leaves the API idle for ``--idle-seconds`` to measure what it costs doing nothing.

Where the time goes, per request, from the records' own timestamps (producer create time, the same clock):

``HTTP → input``   due time → the discharge record's timestamp: client, HTTP, the API's parsing, pseudonymising
                   and registering, up to its producer taking the record;
``worker``         the discharge record → the settlement record's timestamp: the worker noticing the input (its
                   fetch, its idle pause), decoding, merging, the rules, up to appending the output;
``→ answer``       the settlement record → the 200 at the client: the worker's transaction commit, the API's tail
                   fetching the committed record, matching it, the HTTP answer.

Correctness before figures: after the run, every input the topics hold (rosters, enrolments, the API's
discharges) is given to ``hub replay`` in topic-partition order, and (1) the worker's outputs must equal the
replay's by event id, (2) every 200 answer's ``result`` must equal the replay's settlement for that discharge.

``--worker-option idle_pause=0.005`` (repeatable) starts the worker with a tunable of its live shell changed
(benchmarks/whatif/sitecustomize.py), to measure what the worker's side contributes; ``--profile DIR`` samples
the API and the worker with py-spy during the rates.

    .venv/bin/python benchmarks/counter_api_latency.py --rates 20,100 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from harness import (
    BenchError,
    Row,
    Table,
    command_line,
    cpu_seconds,
    die_with_parent,
    percentile,
    row,
    say,
    spy,
    stop_spy,
    summarize_stacks,
    whatif_env,
)
from kafka import KafkaProducer
from reference import compare, read_records, replay_reference

from hub.broker import EmbeddedBroker, ensure_topics, free_port
from hub.runtime import encode_input, spawn_worker, stop_process
from hub.timeutil import SHANGHAI
from hub.topics import INPUT_TOPICS, OUTPUT_TOPICS

REGION = "532503"
BENCH_KEY = "counter-api-benchmark-pseudonym-key-0123456789"
BENCH_HOSPITAL = "H532503001"
BENCH_TOKEN = "counter-api-benchmark-token-H532503001-0123456789"
AUTH = {"Authorization": f"Bearer {BENCH_TOKEN}"}
SETTLEMENTS = "hub.settlements.v1"

COLUMNS = [("rate", "req/s"), ("sent", "sent"), ("ok", "200"), ("other", "other"), ("p50_ms", "p50 ms"),
           ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"), ("in_p50", "HTTP → input p50"),
           ("worker_p50", "worker p50"), ("out_p50", "→ answer p50"), ("api_cpu_pct", "API CPU %"),
           ("worker_cpu_pct", "worker CPU %")]


def bench_id(i: int) -> str:
    """A synthetic, valid ID number per benchmark person (the cashier sends the ID number)."""
    from datetime import date

    from hub.identity import check_character

    born = date(1950, 1, 1) + timedelta(days=i // 1000)
    first17 = f"532503{born:%Y%m%d}{i % 1000:03d}"
    return first17 + check_character(first17)


def enrol(bootstrap: str, numbers: list[str]) -> None:
    """Status (脱贫人口) and enrolment for 2025 of every person, as the department connectors send them."""
    from hub.identity import person_token

    persons = [person_token(n, BENCH_KEY) for n in numbers]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    at = datetime(2025, 1, 2, 8, 0, tzinfo=SHANGHAI).isoformat()
    try:
        for p in persons:
            for topic, value in (
                ("revitalization.poverty-status.v1", {"event_id": f"status:{p}", "occurred_at": at, "person_token": p,
                                                      "categories": ["poverty_alleviated"],
                                                      "household_income_fen": None, "region_code": REGION}),
                ("insurance.enrollments.v1", {"event_id": f"enrol:{p}", "occurred_at": at, "person_token": p,
                                              "year": 2025, "enrolled": True, "subsidy_category": None,
                                              "insured_region": REGION}),
            ):
                key, data = encode_input(topic, value)
                producer.send(topic, key=key, value=data)
        producer.flush()
    finally:
        producer.close()


def discharge_body(person: str, discharge_id: str, rng: random.Random, n: int) -> dict[str, Any]:
    """A cashier's discharge: varied amounts, levels and places, dated in 2025 (covered by the policy)."""
    total = rng.randrange(50_000, 5_000_000)
    day = datetime(2025, 3, 1, 9, 0, tzinfo=SHANGHAI) + timedelta(minutes=n)
    return {"id_number": person, "discharge_id": discharge_id, "discharged_at": day.isoformat(),
            "level": rng.choice(("L1", "L2", "L3")), "in_county": rng.random() < 0.8,
            "referred": rng.random() < 0.3, "total_fen": total, "out_of_policy_fen": rng.randrange(0, total // 10 + 1),
            "hospital_code": BENCH_HOSPITAL}


@dataclass
class Sent:
    """One request as the client saw it (wall-clock seconds, comparable with record timestamps)."""

    discharge_id: str
    due: float
    answered: float | None = None
    status: str = ""
    body: dict[str, Any] = field(default_factory=dict)


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with session.post(url, json=body, headers=AUTH) as resp:
        data = await resp.read()
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, {}


async def warm_up(api: str, person: str, timeout: float) -> float:
    """Post one discharge until it settles (200): the worker has joined its group and is processing."""
    deadline = time.monotonic() + timeout
    rng = random.Random(0)
    async with aiohttp.ClientSession() as session:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            started = time.perf_counter()
            try:
                status, _ = await post(session, f"{api}/v1/discharges", discharge_body(person, f"warmup-{n}", rng, n))
            except aiohttp.ClientError:
                status = 0
            if status == 200:
                return time.perf_counter() - started
            await asyncio.sleep(0.5)
    raise BenchError(f"no settlement within {timeout} s of warm-up; see the worker log")


async def run_rate(api: str, persons: list[str], rate: float, seconds: float, tag: str) -> tuple[list[Sent], float]:
    """Open loop at ``rate``/s for ``seconds``; returns every request and the seconds the run took."""
    rng = random.Random(int(rate))
    total = int(rate * seconds)
    sent: list[Sent] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(i: int, s: Sent) -> None:
            body = discharge_body(persons[i % len(persons)], s.discharge_id, rng, i)
            try:
                status, answer = await post(session, f"{api}/v1/discharges", body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                s.status = type(exc).__name__
                return
            s.answered, s.status, s.body = time.time(), str(status), answer

        wall0, perf0 = time.time(), time.perf_counter()
        start = perf0 + 0.1
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            s = Sent(f"{tag}-{i}", wall0 + (due - perf0))
            sent.append(s)
            tasks.append(asyncio.create_task(one(i, s)))
        await asyncio.gather(*tasks)
        return sent, time.perf_counter() - start


def _ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 1)


def figures(sent: list[Sent], rate: float, seconds: float, stamps: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Latency percentiles and their decomposition from the record timestamps (see the module doc)."""
    statuses = Counter(s.status for s in sent)
    ok = [s for s in sent if s.status == "200" and s.answered is not None]
    latency = [s.answered - s.due for s in ok]  # type: ignore[operator]
    parts: dict[str, list[float]] = {"in": [], "worker": [], "out": []}
    for s in ok:
        if s.discharge_id in stamps:
            t_in, t_out = (t / 1000 for t in stamps[s.discharge_id])
            parts["in"].append(t_in - s.due)
            parts["worker"].append(t_out - t_in)
            parts["out"].append(s.answered - t_out)  # type: ignore[operator]
    out = {"rate": rate, "seconds": seconds, "sent": len(sent), "ok": len(ok), "other": len(sent) - len(ok),
           "statuses": dict(statuses), "p50_ms": _ms(latency, 50), "p95_ms": _ms(latency, 95),
           "p99_ms": _ms(latency, 99), "max_ms": round(max(latency) * 1000, 1) if latency else None,
           "decomposed": len(parts["in"])}
    for name, values in parts.items():
        out[f"{name}_p50"], out[f"{name}_p99"] = _ms(values, 50), _ms(values, 99)
        out[f"{name}_mean"] = round(sum(values) / len(values) * 1000, 1) if values else None
    return out


def record_stamps(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """discharge id → (timestamp of the API's discharge record, of the first settlement record for it)."""
    inputs: dict[str, int] = {}
    outputs: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: (r["topic"], r["partition"], r["offset"])):
        did = r["value"].get("discharge_id")
        if did is None or r["value"].get("hospital_code") != BENCH_HOSPITAL:
            continue
        target = inputs if r["topic"] == "health.discharges.v1" else outputs if r["topic"] == SETTLEMENTS else None
        if target is not None:
            target.setdefault(did, r["timestamp_ms"])
    return {d: (inputs[d], outputs[d]) for d in inputs if d in outputs}


def check_against_replay(bootstrap: str, tmp: Path, answers: list[Sent]) -> tuple[bool, str]:
    """hub replay over every input on the topics (in topic-partition order): worker outputs and 200 answers equal?"""
    from hub.processors.replay import by_event_id

    inputs = read_records(bootstrap, INPUT_TOPICS)
    inputs.sort(key=lambda r: (r["topic"], r["partition"], r["offset"]))
    lines = tmp / "inputs.jsonl"
    lines.write_text("".join(json.dumps({"topic": r["topic"], "value": r["value"]}, ensure_ascii=False) + "\n"
                             for r in inputs), encoding="utf-8")
    reference, _ = replay_reference(lines)
    live = by_event_id(read_records(bootstrap, OUTPUT_TOPICS))
    ok, verdict = compare(reference, live)
    if not ok:
        return False, "worker outputs " + verdict
    wrong = 0
    checked = 0
    for s in answers:
        if s.status != "200":
            continue
        result = dict(s.body.get("result") or {})
        expected = reference.get((SETTLEMENTS, str(result.get("event_id"))))
        checked += 1
        if expected is None or {k: v for k, v in json.loads(expected).items() if k != "person_token"} != result:
            wrong += 1
    if wrong:
        return False, f"{wrong:,} of {checked:,} answers differ from hub replay's settlement"
    return True, f"{verdict}; {checked:,} answers = hub replay's settlements"


async def _round_trips(bootstrap: str, n: int = 100) -> dict[str, float]:
    """What the broker itself costs: an acks=all produce, and a transaction like the worker's (two partitions)."""
    from aiokafka import AIOKafkaProducer

    from hub.topics import probe_topic

    topic, value = probe_topic().name, b"x" * 300
    times: dict[str, list[float]] = {"produce": [], "transaction": []}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    txn = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", transactional_id="bench-round-trip")
    await producer.start()
    await txn.start()
    try:
        for _ in range(n):
            started = time.perf_counter()
            await producer.send_and_wait(topic, value)
            times["produce"].append(time.perf_counter() - started)
        for _ in range(n // 2):
            started = time.perf_counter()
            async with txn.transaction():
                await asyncio.gather(*[await txn.send(topic, value, partition=p) for p in (0, 1)])
            times["transaction"].append(time.perf_counter() - started)
    finally:
        await producer.stop()
        await txn.stop()
    return {f"{k}_{q}": _ms(v, q) for k, v in times.items() for q in (50, 99)}


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the API exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(f"the API did not become healthy within {timeout} s")


def _cpu_pct(pid: int, before: float | None, seconds: float) -> float | None:
    after = cpu_seconds(pid)
    return round(100 * (after - before) / seconds, 1) if after is not None and before is not None else None


def measure(args: argparse.Namespace, table: Table, tmp: Path) -> None:
    """Broker, worker, API; warm-up; each rate, then idle; then the check against hub replay."""
    persons = [bench_id(i) for i in range(args.persons)]
    whatif, note = whatif_env(args.worker_option, args.worker_pace)
    extra = {"HUB_WALL_CLOCK": "0", **whatif}
    if note:
        table.notes.append(note)
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)
        worker = spawn_worker(broker.bootstrap, data_dir=tmp, log_file=tmp / "worker.log", extra_env=extra)
        port = free_port()
        env = {**os.environ, "HUB_BROKER": f"kafka://{broker.bootstrap}", "HUB_API_PORT": str(port),
               "HUB_LOG_LEVEL": "warning", "HUB_PSEUDONYM_KEY": BENCH_KEY,
               "HUB_API_TOKENS": json.dumps({BENCH_HOSPITAL: BENCH_TOKEN})}
        with (tmp / "api.log").open("ab") as api_log:
            api = subprocess.Popen([sys.executable, "-m", "hub.api", "127.0.0.1"], env=env, stdout=api_log,
                                   stderr=subprocess.STDOUT, preexec_fn=die_with_parent)  # noqa: PLW1509
        url = f"http://127.0.0.1:{port}"
        samplers = []
        try:
            warmup = bench_id(999_999)
            enrol(broker.bootstrap, [*persons, warmup])
            wait_healthy(url, api, 60)
            first = asyncio.run(warm_up(url, warmup, 180))
            table.notes.append(f"warm-up: the first settlement was answered in {first * 1000:.0f} ms (worker start)")
            rt = asyncio.run(_round_trips(broker.bootstrap))
            table.notes.append(f"the broker alone (sequential, before the rates): an acks=all produce takes "
                               f"{rt['produce_50']} ms p50 / {rt['produce_99']} ms p99 (part of *worker*: the input "
                               "must be written before it can be fetched); a transaction of two records on two "
                               f"partitions, begin → commit, {rt['transaction_50']} ms p50 / {rt['transaction_99']} ms "
                               "p99 (the worker's commit, part of *→ answer*)")
            if args.profile is not None:
                samplers = [(spy(api.pid, args.profile / "api.raw"), args.profile / "api.raw"),
                            (spy(worker.pid, args.profile / "worker.raw"), args.profile / "worker.raw")]
            runs: list[tuple[Row, list[Sent], float]] = []
            for rate in args.rates:
                with row(f"{rate:g} requests/s") as r:
                    before = {"api": cpu_seconds(api.pid), "worker": cpu_seconds(worker.pid)}
                    sent, seconds = asyncio.run(run_rate(url, persons, rate, args.seconds, f"r{rate:g}"))
                    r.figures.update(api_cpu_pct=_cpu_pct(api.pid, before["api"], seconds),
                                     worker_cpu_pct=_cpu_pct(worker.pid, before["worker"], seconds))
                    runs.append((r, sent, seconds))
                    say(f"rate {rate:g}/s: {Counter(s.status for s in sent)}")
            for sampler, _ in samplers:
                stop_spy(sampler)
            with row(f"idle ({args.idle_seconds:g} s, no request)") as idle:
                before = {"api": cpu_seconds(api.pid), "worker": cpu_seconds(worker.pid)}
                time.sleep(args.idle_seconds)
                idle.figures.update(rate=0, api_cpu_pct=_cpu_pct(api.pid, before["api"], args.idle_seconds),
                                    worker_cpu_pct=_cpu_pct(worker.pid, before["worker"], args.idle_seconds))
                idle.note = "the API's CPU while no cashier asks anything (target < 5 % of a core)"
            say("reading the records back and checking against hub replay …")
            stamps = record_stamps(read_records(broker.bootstrap, ["health.discharges.v1", SETTLEMENTS]))
            ok, verdict = check_against_replay(broker.bootstrap, tmp, [s for _, sent, _ in runs for s in sent])
            for r, sent, seconds in runs:
                r.figures.update(figures(sent, float(r.name.split()[0]), seconds, stamps))
                r.note = (f"p99 of the parts: HTTP → input {r.figures['in_p99']} ms, worker {r.figures['worker_p99']} "
                          f"ms, → answer {r.figures['out_p99']} ms; statuses {r.figures['statuses']}")
                r.check = verdict
                if not ok:
                    r.withhold(verdict)
                table.add(r)
            table.add(idle)
        except BaseException:
            sys.stderr.write((tmp / "worker.log").read_text(errors="replace")[-3000:] + "\n")
            sys.stderr.write((tmp / "api.log").read_text(errors="replace")[-3000:] + "\n")
            raise
        finally:
            for sampler, raw in samplers:
                stop_spy(sampler)
                if raw.exists():
                    raw.with_suffix(".txt").write_text(summarize_stacks(raw) + "\n")
                    say(f"profile: {raw.with_suffix('.txt')}")
            stop_process(api)
            stop_process(worker)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,100", help="comma-separated request rates per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each rate (bounded: ≤ 300)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle time measured after the rates")
    parser.add_argument("--persons", type=int, default=200, help="enrolled persons the discharges spread over")
    parser.add_argument("--worker-option", action="append", default=[], metavar="NAME=VALUE",
                        help="what-if: a StreamOptions field of the worker, e.g. idle_pause=0.005 (repeatable)")
    parser.add_argument("--worker-pace", type=float, default=0.0, metavar="SECONDS",
                        help="what-if: the worker holds empty fetch responses this long (as the API does)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the API and the worker; reports here")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    args.seconds = min(max(args.seconds, 1.0), 300.0)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    table = Table("Counter API latency — discharge → settlement", command_line(argv), COLUMNS)
    table.notes.append(f"{args.persons} enrolled persons; open loop, latency from each request's due time to the 200 "
                       "with its settlement; the API waits up to 5 s (then 202). Parts from the records' timestamps "
                       "(ms): see the module docstring")
    try:
        with tempfile.TemporaryDirectory(prefix="hub-api-bench-") as tmp:
            measure(args, table, Path(tmp))
    finally:
        print(table.markdown())
        table.write_json(args.json)
    return 0 if table.rows and all(r.ok for r in table.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
