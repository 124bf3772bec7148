"""The embedded Kafka-protocol broker (noida-db from its PyPI wheel), and topic set-up from the catalogue.

Why a child process: no Kafka/Redpanda/Docker can be installed here, but the ``noida-db`` wheel ships a
single broker binary (shared/broker-notes.md). The hub starts it on a free loopback port with its own data
dir, so ``make run`` needs nothing installed by hand, and stops it in order (SIGINT: it saves its data).

Why so much care about orphans: a broker left behind holds its port and its data dir (noida-db refuses a
second server on the same dir), so the next ``hub up`` or test run fails in a confusing way. Three layers:

1. ``stop()`` (also from ``atexit`` and the context manager) — SIGINT, wait, SIGKILL after a timeout;
2. ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` in the child, so the kernel stops the broker when the parent dies,
   even by ``kill -9`` (noida-db saves on SIGTERM too). The death signal is tied to the *thread* that
   forked, so it is set only when starting from the main thread (a worker thread exiting would otherwise
   stop a broker the process still uses);
3. otherwise a tiny watchdog process that holds one end of a pipe: the parent's death closes the pipe,
   and the watchdog stops the broker.

The broker runs in its own session, so a Ctrl-C in the terminal reaches the hub only, and the hub stops
the broker after its workers (otherwise both receive SIGINT at once and workers lose their broker first).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import IO

from hub.config import Settings
from hub.errors import BrokerError
from hub.topics import CATALOGUE, CONNECTOR_OFFSETS, Topic, internal_topics

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
GLIBC_NOISE = "weak version `GLIBC_"
"""noida-db's loader prints this at every start; it is harmless on this machine (broker-notes.md)."""

DEFAULT_TOPICS: tuple[Topic, ...] = (*CATALOGUE, CONNECTOR_OFFSETS, *internal_topics())
_PR_SET_PDEATHSIG = 1
_ALREADY_IN_USE = "already in use"


# --------------------------------------------------------------------------------------------------
# The Kafka wire protocol, just enough to know the broker really answers (not only its TCP port)


def _kafka_request(host: str, port: int, api_key: int, version: int, body: bytes, timeout: float) -> bytes:
    """Send one request (header v1) and return the response body after the correlation id.

    Hand-rolled on purpose: readiness and ``hub doctor`` must work before (and without) any client
    library's version negotiation, and must say "the port answers but the protocol does not".
    """
    client_id = b"hub"
    correlation_id = 7
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        data = _recv_exact(sock, size)
    if struct.unpack(">i", data[:4])[0] != correlation_id:
        raise BrokerError(f"{host}:{port}: Kafka response with a wrong correlation id")
    return data[4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        buf += chunk
    return bytes(buf)


def api_versions(address: str, timeout: float = 5.0) -> dict[int, tuple[int, int]]:
    """``{api_key: (min_version, max_version)}`` the broker at ``host:port`` advertises (ApiVersions v0)."""
    host, port = _split(address)
    data = _kafka_request(host, port, 18, 0, b"", timeout)
    error_code, count = struct.unpack(">hi", data[:6])
    if error_code:
        raise BrokerError(f"{address}: ApiVersions answered with error code {error_code}")
    out: dict[int, tuple[int, int]] = {}
    for i in range(count):
        key, lo, hi = struct.unpack(">hhh", data[6 + 6 * i: 12 + 6 * i])
        out[key] = (lo, hi)
    return out


def metadata_brokers(address: str, timeout: float = 5.0) -> int:
    """Number of brokers a Metadata v0 request (no topics listed) reports; raises when it cannot."""
    host, port = _split(address)
    data = _kafka_request(host, port, 3, 0, struct.pack(">i", 0), timeout)
    return struct.unpack(">i", data[:4])[0]


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return host or HOST, int(port)


# --------------------------------------------------------------------------------------------------
# The embedded broker


def binary_path() -> Path:
    """The noida-db binary inside its wheel, made executable (wheels do not always keep the mode bit)."""
    path = Path(str(files("noida_db") / "noida-db"))
    if not path.is_file():
        raise BrokerError(f"noida-db binary not found at {path}; reinstall: pip install noida-db==0.2.3")
    if not os.access(path, os.X_OK):
        try:
            path.chmod(path.stat().st_mode | 0o111)
        except OSError as exc:
            raise BrokerError(f"noida-db binary at {path} is not executable and chmod failed: {exc}") from exc
    return path


def free_port(host: str = HOST) -> int:
    """A port free right now; the broker start retries when another process takes it first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _death_signal_preexec(parent_pid: int) -> object:
    """A ``preexec_fn`` asking the kernel to SIGTERM the child when its parent (thread) dies.

    libc's ``prctl`` is looked up here, in the parent, so the child (between fork and exec) only calls
    it. If the parent died before ``prctl`` took effect, the child stops itself at once.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


_WATCHDOG = r"""
import os, signal, sys, time
pid = int(sys.argv[1])
sys.stdin.buffer.read()  # returns at EOF: the hub closed the pipe or died

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            ours = b"noida-db" in f.read()
        return ours and state not in ("Z", "X")
    except OSError:
        return False

for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
    if not alive():
        break
    os.kill(pid, sig)
    deadline = time.monotonic() + wait
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
"""


class EmbeddedBroker:
    """A noida-db broker as a child process: ``with EmbeddedBroker(dir) as b: use(b.bootstrap)``.

    ``data_dir=None`` uses a fresh temporary dir, deleted at ``stop()`` (tests). A kept data dir survives
    a clean restart; after a ``kill -9`` its topics may come back wrong — ``ensure_topics`` detects that.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        port: int = 0,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        watchdog: bool | None = None,
    ) -> None:
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self._port = port
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._watchdog_wanted = watchdog
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._readers: list[threading.Thread] = []
        self.port: int | None = None
        self.stderr_lines: collections.deque[str] = collections.deque(maxlen=200)
        """Stderr lines kept after filtering the GLIBC noise (the last 200), for errors and tests."""
        self.stdout_lines: collections.deque[str] = collections.deque(maxlen=200)

    # -- properties ------------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the running broker."""
        if self.port is None or not self.running:
            raise BrokerError("the embedded broker is not running; call start() first")
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The broker process's exit code once it has exited on its own (None while it runs or after stop())."""
        return self._proc.poll() if self._proc is not None else None

    @property
    def data_dir(self) -> Path:
        if self._given_dir is not None:
            return self._given_dir
        if self._tmp is None:
            raise BrokerError("the embedded broker has no data dir before start()")
        return Path(self._tmp.name)

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> EmbeddedBroker:
        """Start the broker and return once it answers Kafka ApiVersions and Metadata requests."""
        if self.running:
            return self
        if self._given_dir is None and self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hub-broker-")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._port else 3  # a free port may be taken between probe and bind
        for attempt in range(attempts):
            port = self._port or free_port()
            try:
                self._spawn(port)
                self._wait_ready(port)
            except BrokerError:
                in_use = any(_ALREADY_IN_USE in line for line in self.stderr_lines)
                self._terminate()
                if in_use and attempt + 1 < attempts:
                    log.info("port %d was taken meanwhile; retrying on another port", port)
                    continue
                self._cleanup_tmp()
                raise
            break
        atexit.register(self.stop)
        log.info("embedded broker (noida-db, pid %s) ready on %s, data in %s", self.pid, self.bootstrap,
                 self.data_dir)
        return self

    def stop(self) -> None:
        """Stop the broker: SIGINT (it saves its data), then SIGKILL after ``stop_timeout``. Idempotent."""
        atexit.unregister(self.stop)
        self._terminate()
        self._cleanup_tmp()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------------

    def _spawn(self, port: int) -> None:
        self.stderr_lines.clear()
        self.stdout_lines.clear()
        on_main = threading.current_thread() is threading.main_thread()
        use_watchdog = (not on_main) if self._watchdog_wanted is None else self._watchdog_wanted
        cmd = [str(binary_path()), "start", "--only", "kafka", "--kafka-port", str(port),
               "--data-dir", str(self.data_dir)]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_death_signal_preexec(os.getpid()) if on_main else None,
        )
        self.port = port
        self._readers = [
            _reader(self._proc.stderr, self._on_stderr, "noida-db-stderr"),
            _reader(self._proc.stdout, self._on_stdout, "noida-db-stdout"),
        ]
        if use_watchdog:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(self._proc.pid)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _on_stderr(self, line: str) -> None:
        if GLIBC_NOISE in line:
            return
        self.stderr_lines.append(line)
        log.warning("noida-db: %s", line)

    def _on_stdout(self, line: str) -> None:
        self.stdout_lines.append(line)
        log.debug("noida-db: %s", line)

    def _wait_ready(self, port: int) -> None:
        """Poll until the Kafka protocol answers; fail fast (with its stderr) when the process exits."""
        assert self._proc is not None
        address = f"{HOST}:{port}"
        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                for t in self._readers:
                    t.join(timeout=2)
                raise BrokerError(
                    f"noida-db exited with code {self._proc.returncode} while starting on {address} "
                    f"(data dir {self.data_dir}): {self._stderr_tail() or 'no error output'}"
                )
            try:
                if metadata_brokers(address, timeout=1.0) >= 1 and api_versions(address, timeout=1.0):
                    return
            except (OSError, BrokerError, struct.error) as exc:
                last = exc
            time.sleep(0.05)
        raise BrokerError(
            f"noida-db did not answer Kafka requests on {address} within {self.start_timeout:.0f} s "
            f"(last error: {last}); a large data dir takes seconds to load — raise the timeout or reset "
            f"{self.data_dir}. Output: {self._stderr_tail() or 'none'}"
        )

    def _stderr_tail(self) -> str:
        return " | ".join(list(self.stderr_lines)[-5:])

    def _terminate(self) -> None:
        if self._watchdog is not None:  # first, so it never acts on a pid we are about to reap
            self._watchdog.kill()
            self._watchdog.wait()
            if self._watchdog.stdin is not None:
                self._watchdog.stdin.close()
            self._watchdog = None
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("noida-db (pid %d) ignored SIGINT for %.0f s; killing it (its data dir may "
                                "need a reset)", proc.pid, self.stop_timeout)
                    proc.kill()
                    proc.wait()
            for t in self._readers:
                t.join(timeout=2)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._readers = []

    def _cleanup_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _reader(stream: IO[bytes] | None, sink: object, name: str) -> threading.Thread:
    """A daemon thread feeding each decoded line of ``stream`` to ``sink`` (so the pipe never fills)."""

    def run() -> None:
        assert stream is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                sink(line)  # type: ignore[operator]

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------------------------------
# What the rest of the hub uses


@dataclass
class BrokerHandle:
    """Where the broker is (``bootstrap``: ``host:port[,host:port]``) and, when embedded, the process."""

    bootstrap: str
    embedded: EmbeddedBroker | None = field(default=None, repr=False)

    @property
    def servers(self) -> list[str]:
        return [s for s in self.bootstrap.split(",") if s]

    @property
    def url(self) -> str:
        """The ``kafka://`` form faust takes as ``broker=``."""
        return "kafka://" + self.bootstrap

    def close(self) -> None:
        """Stop the embedded broker, if one was started; a ``kafka://`` cluster is left alone."""
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> BrokerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def broker_data_dir(settings: Settings) -> Path:
    """The embedded broker's own folder under ``HUB_DATA_DIR`` (worker state lives beside it)."""
    return Path(settings.data_dir) / "broker"


def connect(settings: Settings, *, start_timeout: float = 30.0) -> BrokerHandle:
    """Start the embedded broker (``HUB_BROKER=embedded``) or return the ``kafka://`` addresses as they are.

    Nothing is started for ``kafka://``: the cluster is someone else's to run. Topics are not created
    here — call :func:`ensure_topics` (it checks an existing data dir too).
    """
    if settings.broker == "embedded":
        broker = EmbeddedBroker(broker_data_dir(settings), start_timeout=start_timeout).start()
        return BrokerHandle(broker.bootstrap, broker)
    return BrokerHandle(",".join(settings.bootstrap_servers()))


def _admin(bootstrap: str, client_id: str, settings: Settings | None = None, timeout_ms: int = 30000) -> object:
    from kafka import KafkaAdminClient

    from hub.clients import kafka_python_options

    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id=client_id,
                                request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms,
                                **kafka_python_options(settings))
    except Exception as exc:  # kafka-python raises NoBrokersAvailable and friends
        raise BrokerError(f"cannot reach the Kafka broker at {bootstrap}: {exc}") from exc


@contextlib.contextmanager
def admin_client(bootstrap: str, client_id: str = "hub-admin", settings: Settings | None = None, *,
                 timeout_ms: int = 30000) -> Iterator[object]:
    """A kafka-python admin client with the hub's security options (hub.clients), always closed.

    Closed on every path: an open socket is a ResourceWarning, and warnings fail the tests.
    """
    admin = _admin(bootstrap, client_id, settings, timeout_ms)
    try:
        yield admin
    finally:
        admin.close()  # type: ignore[attr-defined]


def partition_counts(admin: object, names: Iterable[str]) -> dict[str, int]:
    """Partition count of each existing topic in ``names`` (topics not found are left out)."""
    wanted = list(names)
    if not wanted:
        return {}
    described = admin.describe_topics(wanted)  # type: ignore[attr-defined]
    return {d["name"]: len(d["partitions"]) for d in described if not d.get("error_code")}


def wrong_partitions_message(name: str, found: int, expected: int, data_dir: Path | None = None) -> str:
    """The message a person can act on when a topic's partition count is not the catalogue's."""
    where = f"delete {data_dir}" if data_dir is not None else "delete the embedded broker's data dir"
    return (
        f"topic {name!r} has {found} partition(s); the catalogue (hub/topics.py) says {expected}. "
        f"On the embedded broker this is noida-db's known defect: after the broker is killed with kill -9 "
        f"a topic can come back with fewer partitions, so the data dir cannot be trusted — reset it "
        f"({where}, or run `hub up --reset`) and replay the sources. On a Kafka cluster the topic was "
        f"created outside the catalogue (or auto-created by a metadata request, which gives 1 partition); "
        f"the hub will not repartition it, as that breaks co-partitioning by person_token."
    )


def kafka_reason(exc: BaseException) -> str:
    """The broker's own words from a kafka-python error (its ``error_message``), not the whole request."""
    found = re.search(r"error_message='([^']*)'", str(exc))
    return f"{type(exc).__name__}: {found.group(1)}" if found else f"{type(exc).__name__}: {exc}"


def cluster_size(admin: object) -> int:
    """Brokers in the cluster, from the metadata the admin client fetched when it connected.

    Not DescribeCluster (kafka-python 3.0.12 fails on noida-db's v0 of it), not a raw Metadata request
    (that would bypass TLS/SASL): the client's own view of the cluster works on both.
    """
    return max(1, len(admin._client.cluster.brokers()))  # type: ignore[attr-defined]


def topic_configs(t: Topic, min_insync_replicas: int) -> dict[str, str]:
    """Broker config of a topic the hub creates: the catalogue's own, plus ``min.insync.replicas``."""
    return {**t.config, "min.insync.replicas": str(min_insync_replicas)}


def ensure_topics(
    bootstrap: str,
    catalogue: Iterable[Topic] | None = None,
    *,
    settings: Settings | None = None,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    data_dir: Path | None = None,
) -> list[str]:
    """Create every topic the hub needs that is missing; check those present. Returns the names created.

    ``catalogue`` defaults to :func:`hub.topics.hub_topics` of the configured app id: the catalogue, the
    connectors' offsets, the worker's internal state topic and the probe's topic — all created here,
    before any worker starts, with the same replication (nothing is left for a client to auto-create
    with a broker default of one replica).

    Replication comes from ``settings`` (``HUB_KAFKA_REPLICATION_FACTOR``/``…_MIN_INSYNC_REPLICAS``;
    default min(3, brokers) and one fewer in sync: 1/1 embedded, 3/2 in production); the keyword
    arguments override it. Idempotent, so ``hub up`` calls it at every start. A topic present with the
    wrong partition count raises :class:`BrokerError` (all such topics in one message): workers must
    not start on it, because keys would land on other partitions than their co-partitioned inputs.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from hub.config import get_settings
    from hub.topics import hub_topics

    s = settings if settings is not None else get_settings()
    topics = list(catalogue) if catalogue is not None else list(hub_topics(s.app_id))
    with admin_client(bootstrap, "hub-ensure-topics", s) as admin:
        if replication_factor is None or min_insync_replicas is None:
            rf, isr = s.replication(cluster_size(admin))
            replication_factor = replication_factor or rf
            min_insync_replicas = min_insync_replicas or min(isr, replication_factor)
        existing = set(admin.list_topics())  # type: ignore[attr-defined]
        missing = [t for t in topics if t.name not in existing]
        created: list[str] = []
        for t in missing:
            try:
                admin.create_topics([NewTopic(  # type: ignore[attr-defined]
                    t.name, t.partitions, replication_factor,
                    topic_configs=topic_configs(t, min_insync_replicas))])
                created.append(t.name)
            except TopicAlreadyExistsError:  # another process created it meanwhile; checked below
                pass
            except Exception as exc:  # InvalidReplicationFactor, TopicAuthorizationFailed, …
                raise BrokerError(
                    f"cannot create topic {t.name} ({t.partitions} partitions, replication factor "
                    f"{replication_factor}, min.insync.replicas {min_insync_replicas}): {kafka_reason(exc)}. "
                    "Check HUB_KAFKA_REPLICATION_FACTOR against the cluster's brokers, and that this user may "
                    "create topics (in production the topics come from deploy/k8s/topics.yaml instead)"
                ) from exc
        counts = partition_counts(admin, [t.name for t in topics])
    problems = [
        wrong_partitions_message(t.name, counts[t.name], t.partitions, data_dir)
        for t in topics if t.name in counts and counts[t.name] != t.partitions
    ]
    absent = [t.name for t in topics if t.name not in counts]
    if absent:
        problems.append(f"topics still missing after CreateTopics: {', '.join(absent)}")
    if problems:
        raise BrokerError("\n".join(problems))
    if created:
        log.info("created %d topic(s) with replication factor %d, min.insync.replicas %d: %s", len(created),
                 replication_factor, min_insync_replicas, ", ".join(created))
    return created


def evict_group_members(bootstrap: str, group_id: str) -> list[str]:
    """Remove every member of consumer group ``group_id`` (LeaveGroup by member id); returns their ids.

    Why: noida-db 0.2.3 never evicts a member whose process was killed (``kill -9``, OOM): its session
    does not expire, the next member's join waits the full rebalance timeout and then never receives
    an assignment (measured: still none after 40 s with a 6 s session timeout). Call this before
    starting a group's workers when none of them can be alive — e.g. ``hub up`` starting after a
    crash. A live member removed by mistake only rejoins. Harmless on Apache Kafka, which evicts
    dead members itself after ``session.timeout.ms``.
    """
    from kafka.admin import MemberToRemove

    with admin_client(bootstrap, "hub-evict") as admin:  # embedded brokers only: PLAINTEXT
        described = admin.describe_groups([group_id]).get(group_id) or {}  # type: ignore[attr-defined]
        members = [m["member_id"] for m in described.get("members") or []]
        if members:
            admin.remove_group_members(  # type: ignore[attr-defined]
                group_id, [MemberToRemove(member_id=m) for m in members])
            log.info("evicted %d stale member(s) from group %s", len(members), group_id)
    return members


def remove_data_dir(path: Path) -> None:
    """Delete an embedded broker's data dir (``hub up --reset``); refuses a dir noida-db did not make."""
    if not path.exists():
        return
    known = {"kafka.json", "noida.control.json"}
    if any(p.name not in known for p in path.iterdir()):
        raise BrokerError(f"{path} holds files other than noida-db's ({', '.join(sorted(known))}); "
                          f"not deleting it — remove it by hand if it is the broker's data dir")
    shutil.rmtree(path)
