"""deploy/ (issue 17, item 3): compose and Kubernetes name only things that exist, and the manifests are valid.

Every host path, config file, image, ConfigMap and Secret that docker-compose.yml, the Dockerfile and the
k8s manifests mention is checked against the repository (or, for Secrets, against what Strimzi creates and
what deploy/README.md tells the operator to create); every built-in Kubernetes object is validated with
``kubernetes-validate`` against the Kubernetes API schema.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from hub.config import NOT_SETTINGS, setting_names
from hub.topics import hub_topics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy/compose"
K8S = ROOT / "deploy/k8s"
IMAGE_DIR = "/etc/hub/connectors"
K8S_VERSION = "1.30.0"
CUSTOM_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "ServiceMonitor", "PrometheusRule",
                "Prometheus", "Alertmanager"}


def _compose() -> dict:
    return yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text(encoding="utf-8"))


def _k8s_docs() -> list[tuple[str, dict]]:
    return [(f.name, d) for f in sorted(K8S.glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d]


def _image_files() -> set[str]:
    """Paths under /etc/hub/connectors in the image: the Dockerfile copies connectors/examples there."""
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^COPY --chown=\S+ connectors/examples /etc/hub/connectors$", dockerfile, re.M)
    return {f"{IMAGE_DIR}/{p.relative_to(ROOT / 'connectors/examples')}"
            for p in (ROOT / "connectors/examples").rglob("*") if p.is_file()}


def _hub_image() -> str:
    services = _compose()["services"]
    built = [s for s in services.values() if "build" in s]
    assert len(built) == 1
    return built[0]["image"]


def test_one_image_name_everywhere() -> None:
    image = _hub_image()
    assert image == "health-relief-hub:0.1.0"
    compose_images = {s["image"] for s in _compose()["services"].values() if s["image"].startswith("health-relief")}
    k8s_images = {c["image"] for _, d in _k8s_docs() if d["kind"] == "Deployment"
                  for c in d["spec"]["template"]["spec"]["containers"]}
    assert compose_images == k8s_images == {image}


def test_dockerfile_copies_only_what_exists_and_runs_as_the_owner_of_its_data() -> None:
    text = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _dest = [w for w in line.split() if not w.startswith("--")]
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
    assert re.search(r"^USER \$\{UID\}$", text, re.M) and "ARG UID=10001" in text
    assert "install -d -o ${UID} -g ${UID}" in text and "/var/lib/hub" in text
    assert "HUB_DATA_DIR=/var/lib/hub" in text
    assert "WORKDIR /app" not in text  # issue 17: /app was root-owned while the image ran as hub


def test_compose_names_only_existing_files_configs_and_services() -> None:
    doc = _compose()
    services = doc["services"]
    image_files = _image_files()
    for name, s in services.items():
        build = s.get("build")
        if build:
            assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).is_file()
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (COMPOSE_DIR / src).exists(), f"{name} mounts {src}, which does not exist"
            else:
                assert src in doc["volumes"], f"{name} uses volume {src}, not declared"
        for word in s.get("command", []):
            if isinstance(word, str) and word.startswith(IMAGE_DIR):
                assert word in image_files, f"{name} runs {word}, which is not in the image"
        for dep in s.get("depends_on", {}):
            assert dep in services, f"{name} depends on {dep}, which is no service"
        for var in s.get("environment", {}):
            if var.startswith("HUB_"):
                assert var in setting_names() | set(NOT_SETTINGS), f"{name} sets {var}, which the hub refuses"
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    targets = {t.split(":")[0] for sc in prom["scrape_configs"] if sc["job_name"] == "hub"
               for c in sc["static_configs"] for t in c["targets"]}
    hub_services = {n for n, s in services.items() if s["image"].startswith("health-relief-hub")}
    assert targets == hub_services
    assert "alertmanager" in services
    am = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert am.split(":")[0] == "alertmanager"


def test_compose_runs_kafka_on_its_volumes_with_production_replication() -> None:
    services = _compose()["services"]
    brokers = [s for s in services if s.startswith("kafka-")]
    assert len(brokers) == 3
    for b in brokers:
        env = services[b]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2 and env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        mount = services[b]["volumes"][0].split(":")[1]
        assert env["KAFKA_LOG_DIRS"] == mount, "Kafka's data must be on the volume"
    script = (COMPOSE_DIR / "create-topics.sh").read_text(encoding="utf-8")
    for t in hub_topics():
        assert f"--topic {t.name} " in script
    assert "--replication-factor 3" in script and "min.insync.replicas=2" in script


def test_every_process_is_deployed_in_compose_and_kubernetes() -> None:
    configs = sorted(p.name for p in (ROOT / "connectors/examples").glob("*.yaml"))
    compose_cmds = [s.get("command", []) for s in _compose()["services"].values()]
    deployments = [d for _, d in _k8s_docs() if d["kind"] == "Deployment"]
    k8s_cmds = [d["spec"]["template"]["spec"]["containers"][0]["args"] for d in deployments]
    for cmds in (compose_cmds, k8s_cmds):
        run = sorted(c[-1].removeprefix(f"{IMAGE_DIR}/") for c in cmds if c[:3] == ["hub", "connector", "run"])
        assert run == configs
        assert any(c[:2] == ["hub", "worker"] for c in cmds)
        assert any(c[:2] == ["hub", "api"] for c in cmds)


def test_kubernetes_names_only_existing_files_config_maps_and_known_secrets() -> None:
    docs = _k8s_docs()
    users = {d["metadata"]["name"] for _, d in docs if d["kind"] == "KafkaUser"}
    secrets = {d["metadata"]["name"] for _, d in docs if d["kind"] == "Secret"}
    config_maps = {d["metadata"]["name"] for _, d in docs if d["kind"] == "ConfigMap"}
    readme = (ROOT / "deploy/README.md").read_text(encoding="utf-8")
    operator_made = {"hub-keys", "hub-connector-env"}  # deploy/README.md tells the operator to create them
    assert all(f"`{s}`" in readme for s in operator_made)
    strimzi_made = users | {"hub-cluster-ca-cert"}  # a Secret per KafkaUser, and the cluster CA
    image_files = _image_files()
    for _, d in docs:
        if d["kind"] != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        for v in pod.get("volumes", []):
            if "configMap" in v:
                assert v["configMap"]["name"] in config_maps, v
            if "secret" in v:
                assert v["secret"]["secretName"] in secrets | strimzi_made | operator_made, v
        for c in pod["containers"]:
            for word in c["args"]:
                if word.startswith(IMAGE_DIR):
                    assert word in image_files, word
            for e in c.get("env", []):
                assert e["name"] in setting_names() | set(NOT_SETTINGS), e["name"]
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets | strimzi_made | operator_made, ref
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["HUB_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
            assert env["HUB_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
            assert env["HUB_KAFKA_SASL_USERNAME"] == d["metadata"]["name"] and d["metadata"]["name"] in users
            assert env["HUB_KAFKA_SSL_CAFILE"].startswith("/etc/kafka-ca/")
            assert env["HUB_METRICS_HOST"] == "0.0.0.0"
    topics = {d["spec"]["topicName"]: d["spec"] for _, d in docs if d["kind"] == "KafkaTopic"}
    assert set(topics) == {t.name for t in hub_topics()}
    for t in hub_topics():
        assert topics[t.name]["partitions"] == t.partitions and topics[t.name]["replicas"] == 3
        assert topics[t.name]["config"]["min.insync.replicas"] == "2"
        assert topics[t.name]["config"]["cleanup.policy"] == ("compact" if t.compacted else "delete")


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml")))
def test_kubernetes_objects_are_valid(name: str) -> None:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d]
    assert docs
    for d in docs:
        if d["kind"] in CUSTOM_KINDS:
            assert d["apiVersion"].split("/")[0] in ("kafka.strimzi.io", "monitoring.coreos.com"), d["kind"]
            assert d["metadata"]["namespace"] == "hub"
            continue
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)


def test_kubernetes_validate_rejects_a_broken_deployment() -> None:
    """The validation above can fail: a Deployment with a misspelt field is refused."""
    d = next(d for _, d in _k8s_docs() if d["kind"] == "Deployment")
    broken = {**d, "spec": {**d["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
