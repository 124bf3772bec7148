"""Hospital counter API latency: how long a cashier waits for a one-stop settlement (一站式结算).

Why this measure: the counter API answers *through* the pipeline (produce the discharge, wait for the
person processor's settlement record), so its latency is the pipeline's end-to-end latency as a person
at the counter feels it: HTTP + produce + the processor's batching + produce + the API's tail.

What it does: starts its own embedded broker, the catalogue's topics, one worker (``hub worker``) and
the API as its own process (``python -m hub.api``, as ``hub api`` runs it), enrols ``--persons``
persons (脱贫人口, insured in Mengzi 532503, enrolled for 2025), then for each rate sends discharges
open-loop at a steady rate for ``--seconds`` (the latency of a request is counted from the moment it
was *due*, so a stalled client cannot hide queueing). Prints a markdown table, the command and the
machine; ``--json`` also writes the raw figures. Everything it starts is stopped, also on Ctrl-C.

    .venv/bin/python benchmarks/counter_api_latency.py --rates 20,100 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from kafka import KafkaProducer

from hub.broker import EmbeddedBroker, ensure_topics, free_port
from hub.runtime import encode_input, spawn_worker, stop_process
from hub.timeutil import SHANGHAI

REGION = "532503"


def _die_with_parent() -> None:
    """preexec_fn: the API process gets SIGTERM when this benchmark dies, even by kill -9."""
    os.setpgrp()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def machine() -> dict[str, str]:
    """nproc, CPU model and load: the figures mean little without them (the machine may be shared)."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "unknown"
    return {"nproc": str(os.cpu_count()), "cpu": model, "loadavg": load, "python": platform.python_version(),
            "kernel": platform.release()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat), to show what the API itself costs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a latency that really happened)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


BENCH_KEY = "counter-api-benchmark-pseudonym-key-0123456789"
BENCH_HOSPITAL = "H532503001"
BENCH_TOKEN = "counter-api-benchmark-token-H532503001-0123456789"
AUTH = {"Authorization": f"Bearer {BENCH_TOKEN}"}


def bench_id(i: int) -> str:
    """A synthetic, valid ID number per benchmark person (the cashier sends the ID number)."""
    from datetime import date, timedelta

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
            "hospital_code": "H532503001"}


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, float]:
    started = time.perf_counter()
    async with session.post(url, json=body, headers=AUTH) as resp:
        await resp.read()
        return resp.status, time.perf_counter() - started


async def warm_up(api: str, person: str, timeout: float) -> float:
    """Post one discharge until it settles (200): the worker has joined its group and is processing."""
    deadline = time.monotonic() + timeout
    rng = random.Random(0)
    async with aiohttp.ClientSession() as session:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                status, seconds = await post(session, f"{api}/v1/discharges",
                                             discharge_body(person, f"warmup-{n}", rng, n))
            except aiohttp.ClientError:
                status, seconds = 0, 0.0
            if status == 200:
                return seconds
            await asyncio.sleep(0.5)
    raise RuntimeError(f"no settlement within {timeout} s of warm-up; see the worker log")


async def run_rate(api: str, persons: list[str], rate: float, seconds: float, tag: str,
                   pids: dict[str, int]) -> dict[str, Any]:
    """Open loop at ``rate``/s for ``seconds``; latency counted from each request's due time."""
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    rng = random.Random(int(rate))
    total = int(rate * seconds)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    lag_max = 0.0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(i: int, due: float) -> None:
            nonlocal lag_max
            body = discharge_body(persons[i % len(persons)], f"{tag}-{i}", rng, i)
            lag_max = max(lag_max, time.perf_counter() - due)
            try:
                status, _ = await post(session, f"{api}/v1/discharges", body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
                return
            statuses[str(status)] += 1
            if status == 200:
                latencies.append(time.perf_counter() - due)

        start = time.perf_counter() + 0.1
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ok = statuses.get("200", 0)
    return {
        "rate": rate, "seconds": seconds, "sent": total, "ok": ok, "accepted_202": statuses.get("202", 0),
        "errors": total - ok - statuses.get("202", 0), "statuses": dict(statuses),
        "achieved_rate": round(total / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else float("nan"),
        "client_lag_max_ms": round(lag_max * 1000, 1),
        **{f"{name}_cpu_pct": round(100 * (cpu_seconds(pid) - cpu_before[name]) / elapsed, 1)
           for name, pid in pids.items()},
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| rate (req/s) | seconds | sent | 200 | 202 (wait ran out) | errors | p50 ms | p95 ms | p99 ms | "
            "max ms | API CPU % | worker CPU % |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    return head + "".join(
        f"| {r['rate']:g} | {r['seconds']:g} | {r['sent']} | {r['ok']} | {r['accepted_202']} | {r['errors']} | "
        f"{r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['api_cpu_pct']} | "
        f"{r['worker_cpu_pct']} |\n" for r in rows)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not become healthy within {timeout} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,100", help="comma-separated request rates per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each rate (bounded: ≤ 300)")
    parser.add_argument("--persons", type=int, default=200, help="enrolled persons the discharges spread over")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    seconds = min(max(args.seconds, 1.0), 300.0)
    info = machine()
    command = " ".join([".venv/bin/python", *sys.argv]) if argv is None else "counter_api_latency " + " ".join(argv)
    persons = [bench_id(i) for i in range(args.persons)]
    with tempfile.TemporaryDirectory(prefix="hub-api-bench-") as tmp, EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap)
        log_dir = Path(tmp)
        worker = spawn_worker(broker.bootstrap, data_dir=log_dir, log_file=log_dir / "worker.log",
                              extra_env={"HUB_WALL_CLOCK": "0"})
        port = free_port()
        env = {**os.environ, "HUB_BROKER": f"kafka://{broker.bootstrap}", "HUB_API_PORT": str(port),
               "HUB_LOG_LEVEL": "warning", "HUB_PSEUDONYM_KEY": BENCH_KEY,
               "HUB_API_TOKENS": json.dumps({BENCH_HOSPITAL: BENCH_TOKEN})}
        with (log_dir / "api.log").open("ab") as api_log:
            api = subprocess.Popen([sys.executable, "-m", "hub.api", "127.0.0.1"], env=env, stdout=api_log,
                                   stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)  # noqa: PLW1509
        url = f"http://127.0.0.1:{port}"
        try:
            warmup = bench_id(999_999)
            enrol(broker.bootstrap, [*persons, warmup])
            wait_healthy(url, api, 60)
            first = asyncio.run(warm_up(url, warmup, 180))
            print(f"warm-up: first settlement answered in {first * 1000:.0f} ms", file=sys.stderr)
            rows = []
            for rate in rates:
                row = asyncio.run(run_rate(url, persons, rate, seconds, f"r{rate:g}",
                                           {"api": api.pid, "worker": worker.pid}))
                print(f"rate {rate:g}/s: {row}", file=sys.stderr)
                rows.append(row)
        except BaseException:
            sys.stderr.write((log_dir / "worker.log").read_text(errors="replace")[-3000:] + "\n")
            sys.stderr.write((log_dir / "api.log").read_text(errors="replace")[-3000:] + "\n")
            raise
        finally:
            stop_process(api)
            stop_process(worker)
    print(f"Command: `{command}`  \nMachine: {info['cpu']}, nproc {info['nproc']}, "
          f"load average at start {info['loadavg']}, Python {info['python']}, Linux {info['kernel']}  \n"
          f"Measured: {datetime.now(SHANGHAI).strftime('%Y-%m-%d %H:%M %Z')}; open loop, latency from each "
          "request's due time to the 200 with its settlement; API wait 5 s (then 202).\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"command": command, "machine": info, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
