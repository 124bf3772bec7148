"""A TLS front for the embedded broker, so the hub's clients do a real TLS + SASL handshake in tests.

Why this shape: noida-db speaks PLAINTEXT (and SASL/PLAIN) only, and advertises the address it binds
in its Metadata answers, so a TLS proxy on another port would be bypassed after the first request.
Here noida-db runs in a network namespace of its own (``unshare -n``) on ``127.0.0.1:PORT``, and the
TLS proxy listens on ``127.0.0.1:PORT`` of the test's namespace: the advertised address *is* the TLS
proxy. The two halves meet through a Unix socket in the file system::

    client ──TLS──► outer: 127.0.0.1:PORT (this namespace) ──unix──► inner ──► noida-db 127.0.0.1:PORT (own netns)

What it proves: the client verifies the broker's certificate against ``HUB_KAFKA_SSL_CAFILE`` (and
the host name), then authenticates with SASL inside TLS, for every connection including those to the
advertised broker. What it cannot: SCRAM (noida-db offers SASL/PLAIN only) — SCRAM is exercised as
option plumbing only (tests/integration/test_clients.py says which).

Usage (the fixture in test_clients.py does this)::

    unshare -n python tls_front.py inner UNIX_SOCKET PORT DATA_DIR NOIDA_BINARY
    python tls_front.py outer UNIX_SOCKET PORT CERT_PEM KEY_PEM
Each prints ``ready`` once it serves and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time


def _loopback_up() -> None:
    """``ip link set lo up`` without iproute2: a fresh network namespace starts with ``lo`` down."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket() as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, struct.pack("16sH", b"lo", 0))[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        writer.close()


def _splice(connect: object) -> object:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await connect()  # type: ignore[operator]
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def _serve(start: object) -> None:
    server = await start  # type: ignore[misc]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


def inner(unix_path: str, port: int, data_dir: str, binary: str) -> None:
    _loopback_up()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    broker = subprocess.Popen([binary, "start", "--only", "kafka", "--kafka-port", str(port), "--data-dir", data_dir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=lambda: libc.prctl(1, signal.SIGTERM))  # noqa: PLW1509
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or broker.poll() is not None:
                    raise SystemExit("noida-db did not start in the namespace") from None
                time.sleep(0.05)
        handle = _splice(lambda: asyncio.open_connection("127.0.0.1", port))
        asyncio.run(_serve(asyncio.start_unix_server(handle, unix_path)))  # type: ignore[arg-type]
    finally:
        broker.send_signal(signal.SIGINT)
        try:
            broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()


def outer(unix_path: str, port: int, cert: str, key: str) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    handle = _splice(lambda: asyncio.open_unix_connection(unix_path))
    asyncio.run(_serve(asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)))  # type: ignore[arg-type]


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "inner":
        inner(args[0], int(args[1]), args[2], args[3])
    else:
        outer(args[0], int(args[1]), args[2], args[3])
