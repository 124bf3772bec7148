"""``hub up``: the whole hub on one machine — the demo, development and test default.

Order matters: broker → topics (all of them, before any worker: an auto-created topic gets one
partition and faust refuses it) → conformance probe → worker → simulator. Ctrl-C stops them in
reverse order and waits for each, so nothing is left running.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from hub.clients import kafka_python_options
from hub.config import Settings

PROGRESS_TOPICS = {
    "settlements": "hub.settlements.v1",
    "deposit decisions": "hub.deposit-decisions.v1",
    "flags": "hub.risk-flags.v1",
    "referrals": "hub.referrals.v1",
    "mismatches": "hub.mismatches.v1",
    "dead letters": "hub.dead-letters.v1",
}


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _pick_port(host: str, wanted: int) -> int:
    if wanted and _port_free(host, wanted):
        return wanted
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Stop(Exception):
    pass


def run_up(settings: Settings, *, simulate: bool, persons: int, rate: float, reset: bool, duration: float,
           out: TextIO = sys.stdout) -> int:
    import logging

    from hub.broker import broker_data_dir, connect, ensure_topics, remove_data_dir
    from hub.doctor import run_probe
    from hub.errors import BrokerError
    from hub.identity import warn_if_dev_key
    from hub.runtime import spawn_worker, stop_process

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    warn_if_dev_key(settings, logging.getLogger("hub.up"))
    data_dir = Path(settings.data_dir)
    if reset and settings.broker == "embedded":
        import shutil

        remove_data_dir(broker_data_dir(settings))
        shutil.rmtree(data_dir / "worker", ignore_errors=True)  # table state belongs to the old broker
        out.write(f"reset: removed {broker_data_dir(settings)} and {data_dir / 'worker'}\n")
    data_dir.mkdir(parents=True, exist_ok=True)

    def on_signal(signum: int, _frame: Any) -> None:
        raise _Stop()

    signal.signal(signal.SIGTERM, on_signal)
    worker = None
    api = None
    handle = connect(settings)
    try:
        try:
            ensure_topics(handle.bootstrap, data_dir=broker_data_dir(settings) if handle.embedded else None)
        except BrokerError as exc:
            sys.stderr.write(f"hub up: {exc}\n")
            return 2
        checks = run_probe(handle.bootstrap)
        failed = [c for c in checks if c.required and not c.ok]
        if failed:
            from hub.doctor import render

            sys.stderr.write(render(checks) + "\nhub up: the broker lacks what the hub relies on.\n")
            return 3
        if handle.embedded is not None:
            # noida-db never evicts a member whose worker was killed with kill -9; the restarted
            # worker would then wait for partitions for ever. One worker per embedded hub: evict.
            from hub.broker import evict_group_members
            from hub.runtime import APP_ID

            evict_group_members(handle.bootstrap, APP_ID)
        out.write(f"broker: {handle.bootstrap}\n")
        metrics_port = _pick_port(settings.metrics_host, settings.metrics_port)
        # The simulated province runs on its own (accelerated) event time, so the wall clock must not
        # drive the rules' clock while it runs.
        worker = spawn_worker(handle.bootstrap, data_dir=data_dir, metrics_port=metrics_port,
                              store=settings.store, log_file=data_dir / "worker.log",
                              extra_env={"HUB_WALL_CLOCK": "0"} if simulate else None)
        out.write(f"metrics: http://{settings.metrics_host}:{metrics_port}/metrics\n")
        from hub.api import ApiThread

        api = ApiThread(handle.bootstrap, settings.metrics_host, _pick_port(settings.metrics_host, settings.api_port))
        out.write(f"api: {api.start()}\n")
        out.write(f"worker log: {data_dir / 'worker.log'} · Ctrl-C stops everything\n")
        out.flush()
        _loop(handle.bootstrap, worker, simulate=simulate, persons=persons, rate=rate, duration=duration, out=out)
    except (KeyboardInterrupt, _Stop):
        out.write("\nstopping…\n")
    finally:
        if api is not None:
            api.stop()
        if worker is not None:
            stop_process(worker)
        handle.close()
    out.write("stopped.\n")
    return 0


def _loop(bootstrap: str, worker: Any, *, simulate: bool, persons: int, rate: float, duration: float,
          out: TextIO) -> None:
    """Feed the simulator at ``rate`` events/s and print one progress line a second."""
    from kafka import KafkaProducer

    from hub.runtime import encode_input, output_counts

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", linger_ms=20, **kafka_python_options())
    events = None
    answers = None
    end: date | None = None
    if simulate:
        from hub.simulate import Province

        # The simulated province lives inside the period its policy covers (the seeds' 2021–2025
        # transition period); it stops at the policy's end rather than flood the dead letters with
        # no_policy discharges.
        start, end = _simulation_window()
        province = Province(seed=int(time.time()), persons=persons, start=start)
        events = iter(province.events())
        answers = _ReferralAnswers(bootstrap, province)
    started = time.monotonic()
    produced = 0
    next_report = started
    tty = out.isatty()
    try:
        while duration <= 0 or time.monotonic() - started < duration:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}; see its log")
            now = time.monotonic()
            if events is not None:
                due = int((now - started) * rate) - produced
                for _ in range(max(due, 0)):
                    ev = answers.next_before(events)
                    if end is not None and ev.value["occurred_at"][:10] > end.isoformat():
                        out.write(f"\nsimulator: reached {end}, the end of the simulated region's policy period; "
                                  "it stops here, the hub keeps running\n")
                        events = None
                        break
                    key, data = encode_input(ev.topic, ev.value)
                    producer.send(ev.topic, key=key, value=data)
                    produced += 1
            if now >= next_report:
                counts = output_counts(bootstrap, PROGRESS_TOPICS.values())
                line = f"{now - started:6.0f}s  in {produced:,}  " + "  ".join(
                    f"{label} {counts.get(topic, 0):,}" for label, topic in PROGRESS_TOPICS.items())
                out.write(("\r" + line) if tty else (line + "\n"))
                out.flush()
                next_report = now + (1.0 if tty else 5.0)
            time.sleep(0.05)
    finally:
        if answers is not None:
            answers.close()
        producer.flush()
        producer.close()


def _simulation_window(county: str = "532503") -> tuple[date, date | None]:
    """First and last day the bundled policy of the simulator's county covers (start a month in)."""
    from datetime import timedelta

    from hub.processors import load_policies

    policies = load_policies()
    mine = [p for p in policies if county.startswith(p.region_prefix)]
    best = max(mine, key=lambda p: len(p.region_prefix))
    return best.effective_from + timedelta(days=30), best.effective_to


class _ReferralAnswers:
    """Departments answering the hub's referrals (转介反馈), some late, so `hub up` shows every flow.

    The simulator decides each answer from the referral id; this reads the referrals the hub
    emitted and holds each answer back until the simulated province's time reaches it, so answers
    arrive in event-time order among the other departments' records.
    """

    def __init__(self, bootstrap: str, province: Any) -> None:
        import heapq

        from kafka import KafkaConsumer, TopicPartition

        self._heapq = heapq
        self.province = province
        self.pending: list[tuple[str, int, Any]] = []
        self.count = 0
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                                      isolation_level="read_committed", **kafka_python_options())
        tps = [TopicPartition("hub.referrals.v1", p) for p in self.consumer.partitions_for_topic("hub.referrals.v1")]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        self.last_poll = 0.0
        self._ahead: Any = None
        self.withdrawn: set[str] = set()

    def _poll(self) -> None:
        from hub import codec
        from hub.processors.convert import json_safe

        if time.monotonic() - self.last_poll < 0.5:
            return
        self.last_poll = time.monotonic()
        values = []
        for msgs in self.consumer.poll(timeout_ms=0, max_records=5000).values():
            for m in msgs:
                values.append(json_safe(codec.decode(m.value)[1]))
        # A department does not answer a referral the hub already withdrew (its flag cleared).
        self.withdrawn |= {v["referral_id"] for v in values if v.get("state") == "withdrawn"}
        values = [v for v in values if v["referral_id"] not in self.withdrawn]
        for ev in self.province.answer_referrals(values):
            self.count += 1
            self._heapq.heappush(self.pending, (ev.value["occurred_at"], self.count, ev))

    def next_before(self, events: Any) -> Any:
        """The next simulator event, or a held answer whose time has come before it."""
        self._poll()
        if self._ahead is None:
            self._ahead = next(events)
        while self.pending and self.pending[0][0] <= self._ahead.value["occurred_at"]:
            answer = self._heapq.heappop(self.pending)[2]
            if answer.value["referral_id"] not in self.withdrawn:
                return answer
        ev, self._ahead = self._ahead, None
        return ev

    def close(self) -> None:
        self.consumer.close()
