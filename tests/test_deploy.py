"""deploy/: the image, docker compose, Kubernetes, the Grafana dashboard and the alert rules, each checked
by the tool that exists for it here (no Docker engine, no cluster, no Grafana):

- Dockerfile: hadolint; its stages, user, health check and entrypoint; the commands it runs, run natively.
- docker-compose.yml: the Compose specification's JSON schema (check-jsonschema); its wiring.
- deploy/k8s: kubernetes-validate (strict) and the Prometheus Operator's models for its CRDs; the wiring.
- Alert rules: generated from deploy/slo.yml and up to date; promtool check and promtool unit tests
  (a test for every alert). The live side (a real Prometheus) is tests/test_monitoring.py.
- Grafana: the dashboard JSON's structure against the provisioning files.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtests.server import ROOT, ServiceProcess, free_port
from service.config import load_settings
from tools import render_alerts
from tools.monitoring import DASHBOARD, dashboard_panels

DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
K8S = DEPLOY / "k8s"
K8S_API_KEYS = DEPLOY / "k8s-api-keys"  # an overlay of deploy/k8s: beside it, since kustomize refuses an overlay inside its base
COMPOSE_AUTH = DEPLOY / "compose.auth.yml"
SLO = yaml.safe_load((DEPLOY / "slo.yml").read_text())
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = VENV_BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} not found: `make install-test` / `make install-system` install it"
    return found


GRACE_SECONDS = 30  # after SIGTERM, before SIGKILL: docker compose's stop_grace_period, Kubernetes' grace after preStop


def drain_seconds() -> int:
    """The longest the service drains after SIGTERM: its request deadline, REQUEST_TIMEOUT_S (default)."""
    return load_settings().request_timeout_s


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in dockerfile_instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def make_serve_command() -> str:
    """The recipe of `make serve`, as the shell would run it in the image (no venv prefix, $PORT)."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    recipe = lines[lines.index(next(ln for ln in lines if ln.startswith("serve:"))) + 1].strip()
    words = [w for w in shlex.split(recipe) if "=" not in w.split("/")[0]]  # drop `PORT=$(PORT)`
    return " ".join(w.replace("$(BIN)/", "").replace("$(PORT)", "$PORT") for w in words)


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_slim_and_runs_as_a_non_root_user() -> None:
    runtime = stages()[1]
    assert len(stages()) == 2
    assert "slim" in next(a for i, a in dockerfile_instructions() if i == "ARG" and a.startswith("PYTHON_IMAGE="))
    assert all(a.startswith("${PYTHON_IMAGE}") for i, a in dockerfile_instructions() if i == "FROM")
    # the runtime stage installs nothing: it copies the venv and the app from the build stage
    assert not [a for i, a in runtime if i == "RUN" and ("pip" in a or "apt" in a)]
    assert {a for i, a in runtime if i == "COPY"} == {"--from=build /opt/venv /opt/venv", "--from=build /app /app"}
    user = [a for i, a in runtime if i == "USER"]
    assert user == ["10001:10001"]
    assert any(i == "RUN" and "useradd" in a and "--uid 10001" in a for i, a in runtime)


def test_image_installs_cpu_torch_by_default_with_the_projects_pin() -> None:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_pin = next(p.split("#")[0].strip() for p in pins if p.startswith("torch=="))
    build = stages()[0]
    assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in build
    install = next(a for i, a in build if i == "RUN" and "torch==" in a)
    assert f'--index-url "$TORCH_INDEX_URL" {torch_pin}' in install
    # the CUDA variant: compose's gpu service builds the same file with PyPI's (CUDA) wheel
    gpu = yaml.safe_load(COMPOSE.read_text())["services"]["lstm-service-gpu"]["build"]
    assert gpu["args"]["TORCH_INDEX_URL"] == "https://pypi.org/simple"


def test_image_bakes_in_the_shipped_models_and_checks_them_at_build_time() -> None:
    build = stages()[0]
    copied = {a.split()[0] for i, a in build if i == "COPY"}
    assert {"models/", "service/", "pyproject.toml"} <= copied
    # everything `pip install -e .` packages is copied in
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") + "/" for p in packages} <= copied
    # the build-time check, after the code is copied, run here natively: every artifact in the manifest matches its sha256
    runs = [a for i, a in build if i in ("RUN", "COPY")]
    check = next(a for a in runs if "verify" in a)
    assert runs.index(check) > max(runs.index(a) for a in runs if a.startswith("models/"))
    assert check.startswith("python -P -c ")
    subprocess.run([sys.executable, "-c", shlex.split(check)[3]], cwd=ROOT, check=True)


def test_project_install_needs_only_pyproject_and_readme_so_code_edits_keep_the_venv_cached() -> None:
    """The editable install (compat mode: a .pth naming /app) comes before the code is copied, so the venv, its
    layer and the runtime stage's copy of it are rebuilt only when pyproject.toml or README.md change."""
    build = stages()[0]
    copies = [(n, a) for n, (i, a) in enumerate(build) if i == "COPY"]
    install = next(n for n, (i, a) in enumerate(build) if i == "RUN" and "pip install" in a and "-e ." in a)
    assert "--config-settings editable_mode=compat" in build[install][1]
    assert [a for n, a in copies if n < install] == ["pyproject.toml README.md ./"]


def test_dockerignore_lets_in_exactly_what_the_image_copies() -> None:
    lines = [ln.strip() for ln in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"  # everything else (.venv, runs/, test-artifacts/) stays out of the build context
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = {w.rstrip("/") for i, a in stages()[0] if i == "COPY" for w in a.split()[:-1]}
    assert allowed == copied
    for path in copied:
        assert (ROOT / path).exists(), path


def test_entrypoint_is_make_serve() -> None:
    entrypoint = json.loads(next(a for i, a in stages()[1] if i == "ENTRYPOINT"))
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    assert entrypoint[2].startswith("exec ")  # bentoml becomes PID 1 and gets SIGTERM itself
    assert shlex.split(entrypoint[2].removeprefix("exec ")) == shlex.split(make_serve_command())
    assert make_serve_command() == "bentoml serve service.service:LSTMService --port $PORT"
    env = "PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 BENTOML_DO_NOT_TRACK=true BENTOML_HOME=/home/app/bentoml PORT=3000"
    assert ("ENV", env) in [(i, " ".join(a.split())) for i, a in stages()[1]]


def healthcheck_command() -> list[str]:
    args = next(a for i, a in stages()[1] if i == "HEALTHCHECK")
    options, _, cmd = args.partition(" CMD ")
    assert "--start-period=" in options and "--interval=" in options
    command: list[str] = json.loads(cmd)
    return command


def test_healthcheck_asks_readyz_and_fails_when_nothing_answers(server: ServiceProcess) -> None:
    command = healthcheck_command()
    assert command[0] == "python" and "/readyz" in command[2]
    python = [sys.executable, *command[1:]]
    assert subprocess.run(python, env={"PORT": str(server.port)}, timeout=30).returncode == 0
    assert subprocess.run(python, env={"PORT": str(free_port())}, capture_output=True, timeout=30).returncode != 0


# ---------------------------------------------------------------- docker compose


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    data = compose()
    data["services"]["prometheus"]["stop_grace_periodd"] = "10s"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(data))
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)], capture_output=True, text=True)
    assert result.returncode == 1 and "'stop_grace_periodd' was unexpected" in result.stdout


def test_compose_runs_the_image_on_cpu_or_on_a_reserved_nvidia_gpu() -> None:
    services = compose()["services"]
    assert set(services) == {"lstm-service", "lstm-service-gpu", "prometheus", "grafana"}
    cpu, gpu = services["lstm-service"], services["lstm-service-gpu"]
    assert cpu["profiles"] == ["cpu"] and gpu["profiles"] == ["gpu"]  # one or the other: make up [GPU=1]
    for svc in (cpu, gpu):
        assert svc["build"]["context"] == "." and svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert svc["networks"]["default"]["aliases"] == ["lstm-service"]  # what Prometheus scrapes
        assert svc["ports"] == ["${PORT:-3000}:3000"] and svc["environment"]["PORT"] == "3000"
    assert "deploy" not in cpu
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["environment"]["DEVICE"] == "cuda"


def test_compose_prometheus_and_grafana_are_wired_to_the_files_in_deploy() -> None:
    data = compose()
    services = data["services"]
    named = set(data["volumes"])
    for name in ("prometheus", "grafana"):
        svc = services[name]
        assert ":" in svc["image"] and not svc["image"].endswith(":latest")  # pinned
        for volume in svc["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_dir(), volume
                assert volume.endswith(":ro")
            else:
                assert source in named, volume
    assert {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith("./")} == named
    # Prometheus: the config in deploy/prometheus, which loads the alert rules next to it
    prom = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == render_alerts.JOB)
    assert job["static_configs"] == [{"targets": ["lstm-service:3000"]}] and job["metrics_path"] == "/metrics"
    # Grafana: provisioning and dashboards mounted where the provisioning files say; anonymous read-only access
    grafana = services["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = dict(v.removesuffix(":ro").split(":") for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text())["providers"][0]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{provider['options']['path']}/{DASHBOARD.name}"
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "${PROMETHEUS_PORT:-9090}:9090" in prom["ports"]


def compose_default(value: str) -> str:
    """`${VAR:-default}` -> default; anything else as it is."""
    match = re.fullmatch(r"\$\{\w+:-(.+)\}", value)
    return match.group(1) if match else value


def test_compose_file_runs_unchanged_under_podman_compose() -> None:
    """What podman refuses and docker takes: tmpfs uid=/gid= options, short image names with no search registry,
    a health check only in the image (dropped from podman's default OCI image format). tests/test_container.py runs it."""
    services = compose()["services"]
    for name in ("lstm-service", "lstm-service-gpu"):
        for mount in services[name]["tmpfs"]:
            options = mount.partition(":")[2]
            assert not re.search(r"\b(uid|gid)=", options), mount
        assert "/home/app/bentoml:mode=1777" in services[name]["tmpfs"]
    for name in ("prometheus", "grafana"):
        image = compose_default(services[name]["image"])
        assert image.split("/")[0] == "docker.io", image  # fully qualified
    assert services["prometheus"]["image"].startswith("${PROMETHEUS_IMAGE:-")  # the stand-in where no registry answers


def test_compose_health_check_is_the_images() -> None:
    options, _, cmd = next(a for i, a in stages()[1] if i == "HEALTHCHECK").partition(" CMD ")
    flags = dict(re.findall(r"--([\w-]+)=(\S+)", options))
    for name in ("lstm-service", "lstm-service-gpu"):
        check = compose()["services"][name]["healthcheck"]
        assert check["test"] == ["CMD", *json.loads(cmd)]
        assert (check["interval"], check["timeout"], check["start_period"], str(check["retries"])) == (
            flags["interval"],
            flags["timeout"],
            flags["start-period"],
            flags["retries"],
        )


def grace_seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, value
    return int(match.group(1))


def test_stop_grace_is_the_same_in_compose_and_kubernetes_and_covers_the_drain() -> None:
    """SIGTERM -> SIGKILL leaves GRACE_SECONDS everywhere; the service's drain (at most REQUEST_TIMEOUT_S) fits in it."""
    services = compose()["services"]
    for name in ("lstm-service", "lstm-service-gpu"):
        assert grace_seconds(services[name]["stop_grace_period"]) == GRACE_SECONDS
    pod = yaml.safe_load((K8S / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] == int(pre_stop[1]) + GRACE_SECONDS
    assert drain_seconds() < GRACE_SECONDS


# ---------------------------------------------------------------- Kubernetes


def manifests() -> dict[Path, dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s (kustomizations and Helm values aside)."""
    found = {}
    for path in sorted([*K8S.rglob("*.yaml"), *K8S_API_KEYS.rglob("*.yaml")]):
        data = yaml.safe_load(path.read_text())
        if data.get("kind") != "Kustomization" and "apiVersion" in data:
            found[path] = data
    return found


def test_kubernetes_objects_validate_strictly() -> None:
    import kubernetes_validate
    from cloudcoil.models.prometheus_operator import v1 as monitoring

    version = kubernetes_validate.latest_version()
    kinds = []
    for path, obj in manifests().items():
        kinds.append(obj["kind"])
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            # Prometheus Operator CRDs: typed models; a field the model does not know would vanish in the round trip
            model = getattr(monitoring, obj["kind"]).model_validate(obj)
            assert model.model_dump(mode="json", by_alias=True, exclude_none=True) == obj, path
        else:
            kubernetes_validate.validate(obj, version, strict=True)
    assert sorted(kinds) == sorted(
        ["Deployment", "Service", "HorizontalPodAutoscaler", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "Secret"]
    )


def test_kubernetes_validate_rejects_a_broken_object() -> None:
    import kubernetes_validate

    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_kustomizations_list_every_manifest_but_the_example_secret() -> None:
    listed: set[Path] = set()
    for kustomization in [*K8S.rglob("kustomization.yaml"), *K8S_API_KEYS.rglob("kustomization.yaml")]:
        data = yaml.safe_load(kustomization.read_text())
        for entry in data.get("resources", []) + [p["path"] for p in data.get("patches", []) if "path" in p]:
            path = (kustomization.parent / entry).resolve()
            assert path.exists(), f"{kustomization}: {entry}"
            listed.add(path)
    # the example Secret holds a placeholder key: `kubectl apply -k` must never create it
    example = K8S_API_KEYS / "secret.example.yaml"
    assert example not in listed
    assert set(manifests()) - {example} == {p for p in listed if p.is_file()}


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests().values() if m["kind"] == kind]


def json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 `add` operations (what the overlays use) applied to a copy of ``obj``."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    for op in ops:
        assert op["op"] == "add", op
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), op["value"])
        else:
            node[last] = op["value"]
    return out


def overlay(kustomization: Path, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the inline patches of ``kustomization`` that target its kind and name."""
    data = yaml.safe_load(kustomization.read_text())
    patches = [p for p in data["patches"] if p["target"] == {"kind": base["kind"], "name": base["metadata"]["name"]}]
    assert patches, f"{kustomization} patches no {base['kind']}"
    for p in patches:
        base = json_patch(base, yaml.safe_load(p["patch"]))
    return base


def test_kubernetes_objects_fit_together() -> None:
    (deployment,) = by_kind("Deployment")
    (service,) = by_kind("Service")
    (pdb,) = by_kind("PodDisruptionBudget")
    (monitor,) = by_kind("ServiceMonitor")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert ports == {"http": int(env["PORT"])}
    # probes: ready = models loaded (/readyz), alive = process answers (/livez)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert int(container["resources"]["requests"]["cpu"]) == int(env["WORKERS"]) * int(env["TORCH_THREADS"])  # one thread per requested core
    assert "memory" in container["resources"]["limits"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001  # the image's user
    # Service -> pods; ServiceMonitor -> Service; the job name the alerts select
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in ports
    assert service["metadata"]["name"] == render_alerts.JOB
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s", "honorLabels": True}]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for hpa in by_kind("HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
        assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]


def test_custom_metric_autoscaler_asks_for_what_prometheus_adapter_serves() -> None:
    (cpu_hpa, custom_hpa) = sorted(by_kind("HorizontalPodAutoscaler"), key=lambda h: h["spec"]["metrics"][0]["type"] == "Pods")
    assert cpu_hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert custom_hpa["metadata"]["name"] == cpu_hpa["metadata"]["name"]  # the overlay patches the CPU one
    adapter = yaml.safe_load((K8S / "custom-metrics" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert custom_hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == rule["name"]["as"]
    assert re.match(rule["name"]["matches"], "bentoml_service_request_in_progress")
    assert rule["seriesQuery"].startswith("bentoml_service_request_in_progress{")


# ---------------------------------------------------------------- API keys (deploy/k8s-api-keys, deploy/compose.auth.yml)


def test_kubernetes_api_keys_are_off_in_the_base_and_the_overlay_mounts_the_secret_file_api_keys_file_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kubernetes_validate

    base = yaml.safe_load((K8S / "deployment.yaml").read_text())
    secret = yaml.safe_load((K8S_API_KEYS / "secret.example.yaml").read_text())
    name = secret["metadata"]["name"]
    assert name not in json.dumps(base), "deploy/k8s alone must not need the Secret"
    assert not {"API_KEYS", "API_KEYS_FILE", "METRICS_TOKEN"} & {e["name"] for e in base["spec"]["template"]["spec"]["containers"][0]["env"]}

    deployment = overlay(K8S_API_KEYS / "kustomization.yaml", base)
    kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    (volume,) = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == name]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True  # the root filesystem stays read-only, and so does the key file
    assert volume["secret"]["optional"] is False  # no Secret: the new pods wait rather than start open
    assert int(volume["secret"]["defaultMode"]) & 0o004  # readable by the image's user (10001), whoever owns it
    (item,) = volume["secret"]["items"]
    assert env["API_KEYS_FILE"]["value"] == f"{mount['mountPath']}/{item['path']}"
    # the metrics token: from the same Secret, optional (absent: /metrics stays open)
    ref = env["METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == name and ref["optional"] is True
    assert {item["key"], ref["key"]} == set(secret["stringData"])

    # what the service makes of the example's file: its key, the comment skipped; the token as it is
    keys_file = tmp_path / item["path"]
    keys_file.write_text(secret["stringData"][item["key"]])
    monkeypatch.setenv("API_KEYS_FILE", str(keys_file))
    monkeypatch.setenv("METRICS_TOKEN", secret["stringData"][ref["key"]])
    monkeypatch.delenv("API_KEYS", raising=False)
    settings = load_settings()
    assert settings.api_keys == ("REPLACE-ME-api-key",) and settings.metrics_token == "REPLACE-ME-metrics-token"


def test_kubernetes_service_monitor_sends_the_metrics_token_with_api_keys_on() -> None:
    from cloudcoil.models.prometheus_operator import v1 as monitoring

    (base,) = by_kind("ServiceMonitor")
    assert "authorization" not in base["spec"]["endpoints"][0]  # open /metrics: nothing to send
    monitor = overlay(K8S_API_KEYS / "monitoring" / "kustomization.yaml", base)
    model = monitoring.ServiceMonitor.model_validate(monitor)
    assert model.model_dump(mode="json", by_alias=True, exclude_none=True) == monitor
    (endpoint,) = monitor["spec"]["endpoints"]
    (deployment,) = by_kind("Deployment")
    env = overlay(K8S_API_KEYS / "kustomization.yaml", deployment)["spec"]["template"]["spec"]["containers"][0]["env"]
    ref = next(e for e in env if e["name"] == "METRICS_TOKEN")
    secret_ref = ref["valueFrom"]["secretKeyRef"]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": secret_ref["name"], "key": secret_ref["key"]}}
    assert {k: v for k, v in endpoint.items() if k != "authorization"} == base["spec"]["endpoints"][0]


def test_kubernetes_api_key_overlays_build_with_kustomize() -> None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not installed")
    for folder in (K8S_API_KEYS, K8S_API_KEYS / "monitoring"):
        result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        built = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout)}
        assert ("Secret", "lstm-api-keys") not in built
        if folder == K8S_API_KEYS:
            deployment = built["Deployment", "lstm-service"]
            assert deployment == overlay(K8S_API_KEYS / "kustomization.yaml", by_kind("Deployment")[0])


def compose_auth() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_AUTH.read_text())
    return data


def test_compose_api_keys_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`docker compose up` with no secret file and nothing set: the variables are empty, and empty means open."""
    for name in ("lstm-service", "lstm-service-gpu"):
        env = compose()["services"][name]["environment"]
        assert env["API_KEYS_FILE"] == "${API_KEYS_FILE:-}" and env["METRICS_TOKEN"] == "${METRICS_TOKEN:-}"
        assert "secrets" not in compose()["services"][name]
    assert "secrets" not in compose()
    monkeypatch.setenv("API_KEYS_FILE", "")
    monkeypatch.setenv("METRICS_TOKEN", "")
    monkeypatch.delenv("API_KEYS", raising=False)
    settings = load_settings()
    assert settings.api_keys == () and settings.metrics_token == ""


def test_compose_auth_override_follows_the_specification_and_points_api_keys_file_at_its_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_AUTH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    auth = compose_auth()
    assert set(auth["services"]) <= set(compose()["services"])
    for name in ("lstm-service", "lstm-service-gpu"):  # both: the GPU service sets its own environment
        svc = auth["services"][name]
        (secret,) = svc["secrets"]
        assert svc["environment"]["API_KEYS_FILE"] == f"/run/secrets/{secret}"  # where compose mounts a secret without a target
        assert svc["environment"]["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")  # refuses to start without it
    source = compose_default(auth["secrets"]["api_keys"]["file"])
    assert source.startswith("./deploy/secrets/")
    # the secrets folder keeps keys out of git
    ignored = subprocess.run(["git", "check-ignore", "-q", source], cwd=ROOT)
    assert ignored.returncode == 0, f"{source} is not ignored by git"
    # what the service makes of such a file
    keys = tmp_path / "api_keys"
    keys.write_text("# one per line\nfirst-key\n\nsecond-key\n")
    monkeypatch.setenv("API_KEYS_FILE", str(keys))
    monkeypatch.delenv("API_KEYS", raising=False)
    assert load_settings().api_keys == ("first-key", "second-key")


def test_compose_prometheus_sends_the_metrics_token_from_its_secret_with_auth_on(tmp_path: Path) -> None:
    auth, base = compose_auth()["services"]["prometheus"], compose()["services"]["prometheus"]
    (secret,) = auth["secrets"]
    assert compose_default(compose_auth()["secrets"][secret]["file"]).startswith("./deploy/secrets/")
    # the same flags, another configuration file in the same mounted folder
    config_flag = next(f for f in auth["command"] if f.startswith("--config.file="))
    assert [f for f in auth["command"] if f != config_flag] == [f for f in base["command"] if not f.startswith("--config.file=")]
    mounted = next(v.split(":")[1] for v in base["volumes"] if v.startswith("./deploy/prometheus:"))
    config_path = DEPLOY / "prometheus" / Path(config_flag.split("=", 1)[1]).relative_to(mounted)
    with_token = yaml.safe_load(config_path.read_text())
    plain = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in with_token["scrape_configs"] if j["job_name"] == render_alerts.JOB)
    assert job.pop("authorization") == {"type": "Bearer", "credentials_file": f"/run/secrets/{secret}"}
    assert with_token == plain  # nothing else differs
    # promtool accepts it once the token file exists (it checks)
    (tmp_path / "alerts.yml").write_text(render_alerts.RULES_FILE.read_text())
    (tmp_path / "token").write_text("t\n")
    local = config_path.read_text().replace(f"/run/secrets/{secret}", str(tmp_path / "token"))
    (tmp_path / "prometheus.yml").write_text(local)
    result = subprocess.run([tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- alert rules


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(render_alerts.RULES_FILE.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_alert_rules_are_generated_from_slo_yml_and_up_to_date() -> None:
    assert render_alerts.main(["--check"]) == 0, "run: python -m tools.render_alerts"


def test_alert_thresholds_are_the_slo_numbers() -> None:
    rules = {(r["alert"], r["labels"].get("slo_seconds")): r["expr"] for r in alert_rules()}
    for name in ("sentiment", "translate"):
        p99 = SLO["latency_seconds"][name]["p99"]
        expr = rules["LSTMServiceLatencyP99AboveSLO", str(p99)]
        assert f'endpoint="/{name}"' in expr and expr.endswith(f"> {p99}")
    assert rules["LSTMServiceHighErrorRatio", None].endswith(f"> {SLO['max_error_ratio']}")
    assert rules["LSTMServiceRejectingRequests", None].endswith(f"> {SLO['rejected_ratio']}")
    assert rules["LSTMServiceSaturated", None].endswith(f"> {SLO['saturation_batch_wait_p95_seconds']}")
    assert SLO["saturation_batch_wait_p95_seconds"] < load_settings().max_latency_ms / 1000  # warns before BentoML sheds
    assert f"[{SLO['no_traffic_minutes']}m]" in rules["LSTMServiceNoTraffic", None]
    burn = rules["LSTMServiceErrorBudgetBurn", None] + rules["LSTMServiceErrorBudgetBurnSlow", None]
    for b in SLO["burn_rate_alerts"]:
        for window in (b["long"], b["short"]):
            assert f"lstm:request_errors:ratio_rate{window} > ({b['factor']} * (1 - {SLO['availability']}))" in burn


def test_promtool_accepts_the_rules_and_the_config() -> None:
    for args in (["check", "rules", str(render_alerts.RULES_FILE)], ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")]):
        result = subprocess.run([tool("promtool"), *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_passing_promtool_unit_test() -> None:
    tests_file = DEPLOY / "prometheus" / "alerts.test.yml"
    result = subprocess.run([tool("promtool"), "test", "rules", str(tests_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    fired = [
        (case["alertname"], alert["exp_labels"])
        for test in yaml.safe_load(tests_file.read_text())["tests"]
        for case in test["alert_rule_test"]
        for alert in case["exp_alerts"]
    ]
    for rule in alert_rules():  # each rule (both latency rules, one per endpoint) is seen firing
        assert any(name == rule["alert"] and rule["labels"].items() <= labels.items() for name, labels in fired), rule["alert"]


def test_promtool_unit_tests_fail_when_a_threshold_moves(tmp_path: Path) -> None:
    """The unit tests pin the rules: the same tests against a rules file with a looser error limit fail."""
    rules = render_alerts.RULES_FILE.read_text().replace(f"> {SLO['max_error_ratio']}\n", "> 0.5\n")
    (tmp_path / "alerts.yml").write_text(rules)
    shutil.copy(DEPLOY / "prometheus" / "alerts.test.yml", tmp_path)
    result = subprocess.run([tool("promtool"), "test", "rules", str(tmp_path / "alerts.test.yml")], capture_output=True, text=True)
    assert result.returncode != 0 and "LSTMServiceHighErrorRatio" in result.stdout + result.stderr


# ---------------------------------------------------------------- Grafana


def overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    expected = {"type": datasource["type"], "uid": datasource["uid"]}
    assert dashboard["schemaVersion"] == 39 and dashboard["uid"] == "lstm-service"
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for i, p in enumerate(panels):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for q in panels[i + 1 :]:
            assert not overlaps(g, q["gridPos"]), (p["title"], q["title"])
        if p["type"] == "row":
            assert "targets" not in p
            continue
        assert p["datasource"] == expected, p["title"]
        assert p["targets"] and len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == expected and t["expr"].strip(), p["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"endpoint", "model"}
    for v in variables.values():
        assert v["datasource"] == expected and v["includeAll"] and v["multi"]
        assert f"${v['name']}" in " ".join(t["expr"] for p in panels for t in p.get("targets", []))


def test_dashboard_shows_every_service_metric_and_the_slo() -> None:
    exprs = " ".join(t["expr"] for p in dashboard_panels() for t in p.get("targets", []))
    doc = (ROOT / "service" / "metrics.py").read_text()
    ours = set(re.findall(r"^\| (lstm_\w+|process_\w+) \|", doc, re.M))
    bentoml = {
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds",
        "bentoml_service_request_in_progress",
    }
    assert len(ours) >= 14
    for metric in ours | bentoml:
        assert re.search(rf"\b{metric}(_bucket|_sum|_count)?\{{", exprs), f"{metric} is on no panel"
    stats = {p["title"]: p for p in dashboard_panels() if p["type"] == "stat"}
    for name in ("sentiment", "translate"):
        (panel,) = [p for t, p in stats.items() if t.startswith(f"/{name} p99")]
        red = panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]
        assert red == {"color": "red", "value": SLO["latency_seconds"][name]["p99"]}
        assert f'endpoint="/{name}"' in panel["targets"][0]["expr"]
    availability = stats["Availability, last hour"]["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]
    assert availability == {"color": "green", "value": SLO["availability"]}
    assert f"(1 - {SLO['availability']})" in stats["Error budget burn rate, last hour"]["targets"][0]["expr"]


def test_makefile_up_and_down_drive_compose() -> None:
    makefile = (ROOT / "Makefile").read_text()
    up = re.search(r"^up:\n\t(.+)$", makefile, re.M)
    down = re.search(r"^down:\n\t(.+)$", makefile, re.M)
    assert up and down
    assert "COMPOSE_PROFILES=$(if $(GPU),gpu,cpu) $(COMPOSE) up" in up.group(1)
    assert down.group(1) == "$(COMPOSE) --profile cpu --profile gpu down"
    assert {s.get("profiles", [None])[0] for s in compose()["services"].values()} == {"cpu", "gpu", None}


def test_healthcheck_command_is_what_the_readiness_probe_asks() -> None:
    command = healthcheck_command()[2]
    (deployment,) = by_kind("Deployment")
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
    assert f"{probe}'" in command


# ---------------------------------------------------------------- building without a registry (deploy/*.sh)

SCRIPTS = sorted(DEPLOY.glob("*.sh"))


def test_deploy_scripts_parse_and_are_executable() -> None:
    assert {p.name for p in SCRIPTS} >= {"engine.sh", "install-engine.sh", "build-image.sh", "build-debian-image.sh"}
    for script in SCRIPTS:
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"
        assert script.name == "engine.sh" or script.stat().st_mode & 0o111, f"{script.name} is not executable"


def test_prometheus_stand_in_image_passes_hadolint_and_runs_like_prom_prometheus() -> None:
    dockerfile = DEPLOY / "prometheus-image" / "Dockerfile"
    result = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert "apt-get install -y --no-install-recommends prometheus" in text
    # prom/prometheus: the binary as entrypoint (compose's `command` is its flags), nobody, data in /prometheus
    assert 'ENTRYPOINT ["/usr/bin/prometheus"]' in text and "USER 65534:65534" in text and "WORKDIR /prometheus" in text
    assert "- prometheus-data:/prometheus" in COMPOSE.read_text()


def test_podman_settings_are_written_once_and_keep_the_rest_of_containers_conf(tmp_path: Path) -> None:
    conf = tmp_path / "containers.conf"
    conf.write_text(
        '[containers]\nlog_driver = "k8s-file"\ndefault_ulimits = [\n  "nofile=1024:1024",\n]\n\n[engine]\nruntime = "crun"\nevents_logger = "file"\n'
    )
    env = {"CONTAINERS_CONF": str(conf), "PATH": "/usr/bin:/bin"}

    def configure() -> str:
        result = subprocess.run(["bash", str(DEPLOY / "install-engine.sh"), "--configure-only"], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert configure().count("install-engine:") == 3
    settings = tomllib.loads(conf.read_text())
    assert settings["containers"] == {"log_driver": "k8s-file", "default_ulimits": ["nofile=16384:16384", "nproc=30000:30000"]}
    assert settings["engine"] == {"runtime": "runc", "events_logger": "file"}
    assert settings["network"] == {"network_backend": "netavark"}
    before = conf.read_text()
    assert configure() == "" and conf.read_text() == before  # idempotent
