"""hub.clients (issue 17, item 1): every hub client talks TLS + SASL when HUB_KAFKA_* say so.

What is exercised for real, against noida-db behind tests/integration/tls_front.py (a TLS front in
front of a broker in its own network namespace):
- TLS: certificate chain verified against HUB_KAFKA_SSL_CAFILE, host name checked, on every connection
  (the bootstrap one and the advertised broker's);
- SASL inside TLS, mechanism PLAIN (the only one noida-db offers), by kafka-python and aiokafka;
- ensure_topics, the whole conformance probe (produce acks=all, group join, a transaction, admin calls),
  the counter API's clients and an example connector (``hub connector run --once``), all over SASL_SSL;
- a client with the wrong CA is refused.
What is NOT exercised: SCRAM-SHA-512 (noida-db offers no SCRAM) — only that the mechanism, user and
password reach the real client objects (test_scram_options_reach_the_client_objects); mutual TLS.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.broker import binary_path, ensure_topics, free_port
from hub.clients import aiokafka_options, kafka_python_options
from hub.config import Settings, get_settings
from hub.doctor import render, run_probe

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FRONT = Path(__file__).with_name("tls_front.py")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_pki(folder: Path, label: str) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(f"{label} CA")).issuer_name(_name(f"{label} CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("kafka")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _start(cmd: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        pytest.fail(f"{cmd[:3]} did not start: {line}{proc.stdout.read()}")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(``127.0.0.1:PORT`` of a TLS + SASL/PLAIN broker, its CA file, a CA that did not sign it)."""
    if not shutil.which("unshare"):
        pytest.fail("`unshare` (util-linux) is needed to run the broker in its own network namespace")
    tmp = tmp_path_factory.mktemp("tls")
    ca, cert, key = _write_pki(tmp / "pki", "hub test")
    other_ca, _, _ = _write_pki(tmp / "other", "someone else")
    port = free_port()
    sock = str(tmp / "broker.sock")
    inner = _start(["unshare", "-n", sys.executable, str(FRONT), "inner", sock, str(port), str(tmp / "data"),
                    str(binary_path())])
    try:
        outer = _start([sys.executable, str(FRONT), "outer", sock, str(port), str(cert), str(key)])
        try:
            yield f"127.0.0.1:{port}", ca, other_ca
        finally:
            _stop(outer)
    finally:
        _stop(inner)


def _settings(bootstrap: str, ca: Path, **extra: object) -> Settings:
    return Settings(broker=f"kafka://{bootstrap}", kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN",
                    kafka_sasl_username="hub-worker", kafka_sasl_password="test-password", kafka_ssl_cafile=ca,
                    **extra)


def test_topics_and_the_whole_probe_over_tls_and_sasl(secured: tuple[str, Path, Path]) -> None:
    bootstrap, ca, _ = secured
    s = _settings(bootstrap, ca)
    assert "health-relief-hub-person-state" in ensure_topics(bootstrap, settings=s)
    checks = run_probe(bootstrap, settings=s)
    assert all(c.ok for c in checks), render(checks)
    assert "answers over SASL_SSL" in checks[0].detail


def test_a_client_with_another_ca_is_refused(secured: tuple[str, Path, Path]) -> None:
    bootstrap, _, other_ca = secured
    checks = run_probe(bootstrap, settings=_settings(bootstrap, other_ca))
    assert len(checks) == 1 and not checks[0].ok, render(checks)
    assert "HUB_KAFKA_SSL_CAFILE" in checks[0].hint


def test_plaintext_clients_do_not_get_through(secured: tuple[str, Path, Path]) -> None:
    bootstrap, _, _ = secured
    checks = run_probe(bootstrap, settings=Settings(broker=f"kafka://{bootstrap}"))
    assert not checks[0].ok


def test_aiokafka_round_trip_over_tls_and_sasl(secured: tuple[str, Path, Path]) -> None:
    """The worker's and the counter API's client library, built with aiokafka_options only."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    bootstrap, ca, _ = secured
    s = _settings(bootstrap, ca)
    ensure_topics(bootstrap, settings=s)

    async def round_trip() -> bytes:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                    **aiokafka_options(s))
        await producer.start()
        try:
            md = await producer.send_and_wait("hub.settlements.v1", b"over tls", key=b"k", partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                    **aiokafka_options(s))
        await consumer.start()
        try:
            tp = TopicPartition("hub.settlements.v1", 0)
            consumer.assign([tp])
            consumer.seek(tp, md.offset)
            record = await asyncio.wait_for(consumer.getone(), 20)
            return bytes(record.value)
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == b"over tls"


def test_counter_api_and_an_example_connector_start_over_tls_and_sasl(
        secured: tuple[str, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As deploy/ runs them: settings from the environment (HUB_KAFKA_*), nothing passed by hand."""
    from connectors.examples.make_samples import write_samples
    from connectors.sdk import testkit
    from hub.api import ApiThread

    bootstrap, ca, _ = secured
    env = {"HUB_BROKER": f"kafka://{bootstrap}", "HUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "HUB_KAFKA_SASL_MECHANISM": "PLAIN", "HUB_KAFKA_SASL_USERNAME": "connector-family-doctor",
           "HUB_KAFKA_SASL_PASSWORD": "test-password", "HUB_KAFKA_SSL_CAFILE": str(ca),
           # outside the embedded broker the edge refuses development or weak secrets (hub.keys): real-looking ones
           "HUB_PSEUDONYM_KEY": "clients-test-pseudonym-key-of-forty-chars!",
           "HUB_API_TOKENS": '{"H532503001": "clients-test-api-token-0123456789abcdef"}',
           "HUB_EDGE_KEY": base64.b64encode(testkit.TEST_EDGE_KEY).decode(), "HUB_METRICS_PORT": "0"}
    ensure_topics(bootstrap, settings=_settings(bootstrap, ca))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    try:
        api = ApiThread(bootstrap, "127.0.0.1", 0)
        assert api.start().startswith("http://127.0.0.1:")
        api.stop()
    finally:
        get_settings.cache_clear()

    write_samples(tmp_path)
    text = (ROOT / "connectors/examples/family_doctor.yaml").read_text(encoding="utf-8")
    (tmp_path / "fd.yaml").write_text(text.replace("settle_seconds: 2", "settle_seconds: 0"), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "hub.cli", "connector", "run", str(tmp_path / "fd.yaml"), "--once"],
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("HUB_")}, **env},
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "family-doctor: produced 3, rejected 1" in res.stdout


def test_scram_options_reach_the_client_objects(tmp_path: Path) -> None:
    """Plumbing only (no SCRAM broker here): what deploy/ configures lands in aiokafka's and kafka-python's
    own configuration, with the CA loaded into the TLS context both use."""
    from aiokafka import AIOKafkaProducer
    from kafka import KafkaProducer

    ca, _, _ = _write_pki(tmp_path, "scram")
    s = Settings(broker="kafka://127.0.0.1:1", kafka_security_protocol="SASL_SSL",
                 kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="hub-worker",
                 kafka_sasl_password="pw-512", kafka_ssl_cafile=ca)

    async def build() -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **aiokafka_options(s))

    import asyncio

    client = asyncio.run(build()).client
    assert (client._security_protocol, client._sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (client._sasl_plain_username, client._sasl_plain_password) == ("hub-worker", "pw-512")
    assert [c["subject"] for c in client._ssl_context.get_ca_certs()] == [((("commonName", "scram CA"),),)]

    producer = KafkaProducer(bootstrap_servers="127.0.0.1:1", api_version=(2, 5, 0), **kafka_python_options(s))
    try:
        cfg = producer.config
        assert (cfg["security_protocol"], cfg["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
        assert (cfg["sasl_plain_username"], cfg["sasl_plain_password"]) == ("hub-worker", "pw-512")
        assert cfg["ssl_context"].get_ca_certs()[0]["subject"] == ((("commonName", "scram CA"),),)
        assert cfg["ssl_check_hostname"] is True
    finally:
        producer.close(timeout=0)
