"""deploy/k8s, validated offline: the Kubernetes objects against the schemas kubernetes-validate ships (strict:
unknown fields fail), the KEDA objects against KEDA's documented fields (its CRD schema cannot be downloaded
here), and the wiring between them (names, secrets, ports, commands that the CLI accepts)."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from core.messages import CLASSIFY_QUEUE
from producer.cli import app
from tests.conftest import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # an old enough API server: the manifests use nothing newer
KEDA_API = "keda.sh/v1alpha1"
# KEDA 2.x's Redis list scaler (keda.sh/docs/scalers/redis-lists) and ScaledObject spec fields.
REDIS_SCALER_FIELDS = {"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "username",
                       "usernameFromEnv", "password", "passwordFromEnv", "listName", "listLength",
                       "activationListLength", "databaseIndex", "enableTLS", "unsafeSsl"}
SCALED_OBJECT_FIELDS = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                        "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
TRIGGER_AUTH_PARAMETERS = {"username", "password", "tls", "ca", "cert", "key", "keyPassword"}


def documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every object of the files kustomization.yaml lists."""
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    return [(name, doc) for name in listed for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def find(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [doc for _, doc in documents() if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


def container(deployment: str) -> dict[str, Any]:
    (only,) = find("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_the_kustomization_lists_every_manifest_once() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization" and kustomization["namespace"] == "tileclass"
    files = sorted(path.name for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    assert {image["name"] for image in kustomization["images"]} == {"tileclass"}


@pytest.mark.parametrize("name, doc", [pair for pair in documents() if not pair[1]["apiVersion"].startswith("keda")],
                         ids=lambda value: value if isinstance(value, str) else value["kind"])
def test_each_kubernetes_object_is_valid_against_its_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_an_invalid_object_is_refused_by_the_validator() -> None:
    deployment = find("Deployment", "tileclass-worker")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1  # no such field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_keda_scales_the_worker_deployment_on_the_redis_classify_list() -> None:
    scaled = find("ScaledObject")
    assert scaled["apiVersion"] == KEDA_API
    assert set(scaled["spec"]) <= SCALED_OBJECT_FIELDS
    target = scaled["spec"]["scaleTargetRef"]
    worker = find("Deployment", target["name"])
    assert (target.get("kind", "Deployment"), target.get("apiVersion", "apps/v1")) == ("Deployment", "apps/v1")
    assert worker["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    assert scaled["spec"]["minReplicaCount"] == 0 < scaled["spec"]["maxReplicaCount"]
    assert isinstance(scaled["spec"]["cooldownPeriod"], int) and scaled["spec"]["cooldownPeriod"] > 0
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    metadata = trigger["metadata"]
    assert set(metadata) <= REDIS_SCALER_FIELDS, set(metadata) - REDIS_SCALER_FIELDS
    assert all(isinstance(value, str) for value in metadata.values()), "KEDA trigger metadata is a string map"
    assert metadata["listName"] == CLASSIFY_QUEUE
    assert int(metadata["listLength"]) > 0
    config = find("ConfigMap", "tileclass-config")["data"]
    for key in ("hostFromEnv", "portFromEnv"):  # resolved from the worker container's environment
        assert metadata[key] in config
    assert {"configMapRef": {"name": "tileclass-config"}} in container(target["name"])["envFrom"]
    assert metadata["databaseIndex"] == config["REDIS_DB"]


def test_the_redis_password_reaches_keda_through_a_trigger_authentication_on_the_secret() -> None:
    scaled = find("ScaledObject")
    auth = find("TriggerAuthentication", scaled["spec"]["triggers"][0]["authenticationRef"]["name"])
    assert auth["apiVersion"] == KEDA_API
    secret = find("Secret")
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["parameter"] in TRIGGER_AUTH_PARAMETERS
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]


def test_workers_take_one_gpu_each_mount_the_tiles_and_models_and_outlast_a_batch() -> None:
    worker = find("Deployment", "tileclass-worker")
    spec = worker["spec"]["template"]["spec"]
    main = container("tileclass-worker")
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {mount["mountPath"]: mount for mount in main["volumeMounts"]}
    assert mounts["/tiles"]["readOnly"] is True and "/models" in mounts
    config = find("ConfigMap", "tileclass-config")["data"]
    assert config["TILECLASS_TILE_ROOTS"] == '{"tiles": "/tiles"}' and config["TILECLASS_MODEL_DIR"] == "/models"
    # A stopping pod finishes its batch within the grace period, before Redis would hand the batch to another.
    assert 0 < spec["terminationGracePeriodSeconds"] < int(config["TILECLASS_VISIBILITY_TIMEOUT"])
    command = main["command"]
    port = command[command.index("--metrics-port") + 1]
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == port == str(main["ports"][0]["containerPort"])


@pytest.mark.parametrize("kind, name", [("Deployment", "tileclass-worker"), ("Deployment", "tileclass-api"),
                                        ("Job", "tileclass-migrate")])
def test_every_command_is_one_the_cli_accepts_and_every_variable_it_uses_is_defined(kind: str, name: str) -> None:
    obj = find(kind, name)
    (main,) = obj["spec"]["template"]["spec"]["containers"]
    command = main["command"]
    assert command[0] == "tileclass"
    result = CliRunner().invoke(app, [*command[1:], "--help"])  # an unknown option fails before --help answers
    assert result.exit_code == 0, f"{command}: {result.output}"
    defined = set(find("ConfigMap", "tileclass-config")["data"])
    secret = find("Secret")
    for variable in main["env"]:
        for reference in re.findall(r"\$\((\w+)\)", variable.get("value", "")):
            assert reference in defined, f"{variable['name']} uses $({reference}) before it is defined"
        if "valueFrom" in variable:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
        defined.add(variable["name"])
    assert "TILECLASS_DATABASE_URL" in defined


def test_the_http_server_listens_for_the_service_requires_its_token_and_is_probed_without_it() -> None:
    api = container("tileclass-api")
    assert api["command"] == ["tileclass", "serve", "--host", "0.0.0.0", "--port", "8000"]
    (port,) = api["ports"]
    assert port["containerPort"] == 8000
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}  # the database answers
    from api.auth import OPEN_PATHS

    assert {"/healthz", "/readyz"} <= OPEN_PATHS  # the probes need no token
    token = next(v for v in api["env"] if v["name"] == "TILECLASS_API_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["key"] == "TILECLASS_API_TOKEN"
    service = find("Service", "tileclass-api")
    pods = find("Deployment", "tileclass-api")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pods.items()
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_migration_job_upgrades_the_database_and_the_secrets_hold_only_placeholders() -> None:
    (migrate,) = find("Job", "tileclass-migrate")["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["tileclass", "db", "upgrade"]
    assert set(find("Secret")["stringData"].values()) == {"change-me"}  # refused at start until replaced
