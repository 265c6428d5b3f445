"""The image and the Kubernetes manifests: `kubectl kustomize` builds them,
kubernetes-validate accepts every object, and what they name is what the app serves and
reads; the README's production commands name the same objects. (No container engine runs on
the test machines: the Containerfile is read, not built; test_packaging_processes.py runs
its entrypoint.)"""
import ipaddress
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import flask
import jsonschema
import kubernetes_validate
import pytest
import sqlalchemy as sa
import yaml

from provider_admin import config as app_config_module
from provider_admin import kube
from provider_admin.database import MIGRATIONS
from provider_admin.kube import permissions

from .kube import KubeAPI

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = {"base": DEPLOY, "example overlay": DEPLOY / "overlays" / "example"}
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
CONTAINERFILE = ROOT / "Containerfile"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
# The oldest Kubernetes the manifests are for (a preStop `sleep` needs 1.30) and the newest
# whose schema kubernetes-validate ships.
SCHEMA_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
SECRET_NAMES = {"DATABASE_URL", "PROVIDER_ADMIN_SECRET_KEY", "PROVIDER_ADMIN_ENCRYPTION_KEY"}
BUILTIN_NEEDS = {"needs_service_accounts": True, "needs_services": True}


# --- Building the manifests -----------------------------------------------------------------

def kubectl() -> str:
    """The kubectl requirements-dev.txt pins (beside this Python), else one on PATH; without
    either skip, or fail where CI demands these tests (PROVIDER_ADMIN_REQUIRE_KUBECTL)."""
    path = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or shutil.which("kubectl")
    if path is None:
        reason = "kubectl is not installed (requirements-dev.txt), so the manifests cannot be built"
        if os.environ.get("PROVIDER_ADMIN_REQUIRE_KUBECTL"):
            pytest.fail(f"{reason}, and PROVIDER_ADMIN_REQUIRE_KUBECTL is set", pytrace=False)
        pytest.skip(reason)
    return path


def build(folder: Path) -> list[dict]:
    done = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict]]:
    return {name: build(folder) for name, folder in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="module")
def base(built) -> list[dict]:
    return built["base"]


def named(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = named(objs, kind, name)
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def pod_specs(objs: list[dict]) -> dict[str, dict]:
    """Each workload's pod spec, by its component label."""
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]["spec"]
            for o in objs if o["kind"] in ("Deployment", "Job")}


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def settings(objs: list[dict]) -> dict[str, str]:
    """The settings ConfigMap's data (its name carries kustomize's hash)."""
    found = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("provider-admin-settings")]
    assert len(found) == 1
    return found[0]["data"]


def secret_names(objs: list[dict]) -> set[str]:
    """The Secret's keys: the overlay makes it; the base names it (its header's command)."""
    secrets = named(objs, "Secret")
    if secrets:
        return {key for s in secrets for key in s.get("data", {})}
    header = (DEPLOY / "base" / "kustomization.yaml").read_text()
    return set(re.findall(r"--from-literal=(\w+)=", header))


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_object_validates_against_the_kubernetes_schema(built, kustomization, version):
    objs = built[kustomization]
    assert len(objs) >= 15
    problems = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except jsonschema.ValidationError as error:  # what validate() raises in strict mode
            problems.append(f"{obj['kind']} {obj['metadata']['name']}: {error.message} "
                            f"at {'.'.join(map(str, error.path))}")
    assert not problems, f"against Kubernetes {version}:\n" + "\n".join(problems)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_objects_of_a_deployment_are_there_and_labelled(built, kustomization):
    objs = built[kustomization]
    web = one(objs, "Deployment", "provider-admin-web")
    assert web["spec"]["replicas"] >= 2
    assert one(objs, "Deployment", "provider-admin-scheduler")["spec"]["replicas"] == 2
    for kind in ("Service", "Job", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        one(objs, kind)
    assert {p["metadata"]["name"] for p in named(objs, "PodDisruptionBudget")} == {
        "provider-admin-web", "provider-admin-scheduler"}
    for obj in objs:
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "provider-admin", obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/part-of") == "provider-admin", obj["metadata"]["name"]
    for workload in named(objs, "Deployment"):
        selector = workload["spec"]["selector"]["matchLabels"]
        template = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= template.items()
        assert selector.get("app.kubernetes.io/component")  # web and scheduler never select each other
        pdb = one(objs, "PodDisruptionBudget", workload["metadata"]["name"])
        assert pdb["spec"]["selector"]["matchLabels"] == selector
    # Web pods unready for a database outage do not hold up a node's drain.
    assert one(objs, "PodDisruptionBudget", "provider-admin-web")["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    web_selector = web["spec"]["selector"]["matchLabels"]
    assert one(objs, "Service")["spec"]["selector"] == web_selector
    assert web["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] == web_selector
    job = one(objs, "Job")["spec"]
    assert job["backoffLimit"] >= 1 and job["ttlSecondsAfterFinished"] > 0


# --- What the pods run: the image, its commands and its user --------------------------------

def containerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    """The build stages, each from its FROM on (ARGs before the first FROM come first)."""
    result = [[]]
    for instruction in containerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def last(stage, word: str) -> str:
    values = [args for w, args in stage if w == word]
    assert values, f"no {word} in the final stage"
    return values[-1]


def image_env() -> dict[str, str]:
    env = {}
    for word, args in final_stage():
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def image_uid() -> int:
    user = last(final_stage(), "USER").split(":")[0]
    assert user.isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot"
    return int(user)


def entrypoint_commands() -> set[str]:
    """The command names the entrypoint's case statement knows (besides "anything else")."""
    return set(re.findall(r"^\s+(\w+)\)$", ENTRYPOINT.read_text(), re.M))


def test_the_containerfile_builds_a_slim_non_root_image_without_build_tools():
    args = dict(a.split("=", 1) for w, a in stages()[0] if w == "ARG")
    froms = [a for w, a in containerfile_instructions() if w == "FROM"]
    assert len(froms) >= 2, "wheels are built in a stage of their own"
    base_image = froms[-1].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", ""))
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base_image), base_image
    final = final_stage()
    run_lines = " ".join(a for w, a in final if w == "RUN")
    for tool in ("gcc", "build-essential", "apt-get install", "make "):
        assert tool not in run_lines, f"{tool} in the final stage"
    assert "build-essential" in " ".join(a for w, a in stages()[1] if w == "RUN")
    copied_from = [a for w, a in final if w == "COPY" and a.startswith("--from=")]
    builder = froms[0].split(" AS ")[-1].strip()
    assert copied_from == [f"--from={builder} /opt/venv /opt/venv"]
    assert image_env()["PATH"].startswith("/opt/venv/bin:")
    assert image_uid() != 0
    assert last(final, "EXPOSE") == "8000"
    assert json.loads(last(final, "ENTRYPOINT")) == ["/app/deploy/entrypoint.sh"]
    assert json.loads(last(final, "CMD"))[0] in entrypoint_commands()


def test_the_healthcheck_asks_healthz_with_pythons_urllib():
    check = last(final_stage(), "HEALTHCHECK")
    command = json.loads(check.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "urllib.request.urlopen('http://127.0.0.1:8000/healthz'" in command[2]
    compile(command[2], "HEALTHCHECK", "exec")


def test_the_image_copies_what_exists_and_what_the_app_needs():
    copies = [shlex.split(a) for w, a in final_stage() if w == "COPY" and not a.startswith("--from")]
    sources = [source.rstrip("/") for *sources, _ in copies for source in sources]
    for source in sources:
        assert (ROOT / source).exists(), source
    # What the running app reads besides its package: its folders (provider_admin/__init__.py,
    # database.py), app.py, the gunicorn settings and the entrypoint the ENTRYPOINT names.
    needed = {"app.py", "provider_admin", "templates", "static", MIGRATIONS.name, str(GUNICORN_CONF.relative_to(ROOT)),
              str(ENTRYPOINT.relative_to(ROOT))}
    assert needed <= set(sources)
    workdir = last(final_stage(), "WORKDIR")
    for *_, destination in copies:  # relative destinations land in /app, where the entrypoint cds
        assert destination.startswith(("./", "provider_admin", "migrations", "templates", "static", "deploy")), destination
    assert workdir == "/app" and json.loads(last(final_stage(), "ENTRYPOINT"))[0] == f"{workdir}/{ENTRYPOINT.relative_to(ROOT)}"
    assert os.access(ENTRYPOINT, os.X_OK)
    # The build context holds only what is copied (the ignore file allows each) and
    # requirements.txt; both ignore files say the same.
    ignore = (ROOT / ".containerignore").read_text()
    assert ignore == (ROOT / ".dockerignore").read_text()
    allowed = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
    assert allowed == set(sources) | {"requirements.txt"}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_container_runs_the_image_with_a_command_the_entrypoint_knows(built, kustomization):
    objs = built[kustomization]
    images = {c["image"] for spec in pod_specs(objs).values() for c in containers(spec)}
    assert len(images) == 1, images
    kustomized = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())["images"][0]
    assert kustomized["name"] == "provider-admin"
    if kustomization == "base":
        assert images == {f"provider-admin:{kustomized['newTag']}"}
    commands = {}
    for component, spec in pod_specs(objs).items():
        for container in containers(spec):
            assert "command" not in container, "the image's ENTRYPOINT runs"
            commands[component] = container["args"][0]
    assert commands == {"web": "web", "scheduler": "scheduler", "migration": "migrate"}
    assert set(commands.values()) <= entrypoint_commands()


def test_every_pod_meets_the_restricted_pod_security_standard(base):
    assert one(base, "Namespace", "provider-admin")["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"
    env = image_env()
    writable = {"/tmp", env["PROMETHEUS_MULTIPROC_DIR"], env["PROVIDER_ADMIN_INSTANCE_PATH"]}
    specs = pod_specs(base)
    assert set(specs) == {"web", "scheduler", "migration"}
    for component, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == image_uid(), component
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, component
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), component
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert all(set(v) == {"name", "emptyDir"} for v in volumes.values()), component
        for container in containers(spec):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, component
            assert context["readOnlyRootFilesystem"] is True, component
            assert context["capabilities"] == {"drop": ["ALL"]}, component
            assert not context.get("privileged"), component
            assert context.get("runAsUser", pod["runAsUser"]) != 0, component
            assert context.get("seccompProfile", pod["seccompProfile"]) == {"type": "RuntimeDefault"}
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert writable <= set(mounts), f"{component}: {writable - set(mounts)} is not writable"
            assert all(mounts[path] in volumes for path in writable)


def test_the_service_account_token_is_mounted_only_where_the_builtin_provider_needs_it(base):
    assert one(base, "ServiceAccount")["automountServiceAccountToken"] is False
    mounted = {component: spec.get("automountServiceAccountToken", True)
               for component, spec in pod_specs(base).items()}
    assert mounted == {"web": True, "scheduler": True, "migration": False}


# --- What the pods ask of the app ------------------------------------------------------------

def gunicorn_settings(**environ) -> dict:
    """gunicorn.conf.py's module namespace as gunicorn reads it, under this environment."""
    saved = dict(os.environ)
    try:
        for name in ("WEB_CONCURRENCY", "PROVIDER_ADMIN_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS",
                     "PROMETHEUS_MULTIPROC_DIR"):
            os.environ.pop(name, None)
        os.environ.update(environ)
        return runpy.run_path(str(GUNICORN_CONF))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_probes_ask_what_the_app_serves_on_the_port_gunicorn_binds(base, client):
    web = one(base, "Deployment", "provider-admin-web")["spec"]["template"]["spec"]
    container = web["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = int(gunicorn_settings()["bind"].rsplit(":", 1)[1])
    assert ports == {"http": port} and last(final_stage(), "EXPOSE") == str(port)
    assert one(base, "Service")["spec"]["ports"][0]["targetPort"] == "http"
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")}
    assert {kind: (p["path"], p["port"]) for kind, p in probes.items()} == {
        "startup": ("/healthz", "http"), "liveness": ("/healthz", "http"), "readiness": ("/readyz", "http")}
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready"
    # The readiness probe waits longer than /readyz waits for the database.
    ready_timeout = float(settings(base).get("PROVIDER_ADMIN_READY_TIMEOUT",
                                             app_config_module.Defaults.READY_TIMEOUT))
    assert container["readinessProbe"]["timeoutSeconds"] > ready_timeout
    # Kubernetes stops a pod after its pause and gunicorn's graceful stop, not before.
    grace = container["lifecycle"]["preStop"]["sleep"]["seconds"] + gunicorn_settings()["graceful_timeout"]
    assert web["terminationGracePeriodSeconds"] >= grace
    scheduler = one(base, "Deployment", "provider-admin-scheduler")["spec"]["template"]["spec"]
    assert not any(k.endswith("Probe") for k in scheduler["containers"][0]), "the scheduler serves no HTTP"
    assert scheduler["terminationGracePeriodSeconds"] > 30  # above the scheduler's own shutdown grace


def test_a_release_starts_every_new_web_pod_at_once_and_never_empties_the_service(base):
    """All new pods start beside the old ones while the Job migrates (README "Production");
    a new pod joins within one probe period of the Job's end, an old one leaves after two
    failed probes, so not before; the rollout outlasts the longest migration."""
    web = one(base, "Deployment", "provider-admin-web")["spec"]
    assert web["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}
    probe = web["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe.get("successThreshold", 1) == 1 and probe["failureThreshold"] >= 2
    assert probe["timeoutSeconds"] < probe["periodSeconds"] <= 10
    job = one(base, "Job")["spec"]
    assert web["progressDeadlineSeconds"] > job["activeDeadlineSeconds"]
    startup = web["template"]["spec"]["containers"][0]["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz", "a new pod starts while its schema is behind"
    # A new scheduler waits for the Job as long as the Job may run (the entrypoint).
    scheduler = one(base, "Deployment", "provider-admin-scheduler")["spec"]["template"]["spec"]["containers"][0]
    waits = {e["name"]: e["value"] for e in scheduler["env"]}["DATABASE_WAIT_SECONDS"]
    assert float(waits) >= job["activeDeadlineSeconds"]


def service_variables(objs: list[dict]) -> dict[str, str]:
    """What Kubernetes puts in the environment of a pod for each Service of its namespace
    (unless enableServiceLinks is false), with a made-up cluster address."""
    found = {}
    for service in named(objs, "Service"):
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        first = service["spec"]["ports"][0]
        found |= {f"{prefix}_SERVICE_HOST": "10.96.0.10", f"{prefix}_SERVICE_PORT": str(first["port"]),
                  f"{prefix}_PORT": f"{first['protocol'].lower()}://10.96.0.10:{first['port']}"}
        for port in service["spec"]["ports"]:
            tcp = f"{prefix}_PORT_{port['port']}_{port['protocol']}"
            found |= {f"{prefix}_SERVICE_PORT_{port['name'].upper()}": str(port["port"]),
                      tcp: f"{port['protocol'].lower()}://10.96.0.10:{port['port']}",
                      f"{tcp}_PROTO": port["protocol"].lower(), f"{tcp}_PORT": str(port["port"]),
                      f"{tcp}_ADDR": "10.96.0.10"}
    return found


def test_no_pod_gets_the_services_variables_which_the_app_would_read_as_settings(base, tmp_path, monkeypatch):
    variables = service_variables(base)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    app = flask.Flask("provider_admin", instance_path=str(tmp_path))
    app_config_module.load(app)
    read = {name for name in variables if name.removeprefix("PROVIDER_ADMIN_") in app.config}
    assert "PROVIDER_ADMIN_PORT" in read and app.config["PORT"] == "tcp://10.96.0.10:80"
    for component, spec in pod_specs(base).items():
        assert spec.get("enableServiceLinks") is False, f"the {component} pods would read {sorted(read)}"


def names_read_by_the_app() -> set[str]:
    """The environment variables provider_admin/config.py reads: PROVIDER_ADMIN_ + a default's
    name or a key it looks up, and the ones it takes from os.environ itself."""
    source = Path(app_config_module.__file__).read_text()
    keys = {k for k in vars(app_config_module.Defaults) if k.isupper()}
    keys |= set(re.findall(r'app\.config(?:\.get\(|\[)"([A-Z_]+)"', source))
    environ = set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', source))
    return {f"PROVIDER_ADMIN_{k}" for k in keys} | environ


def names_read_by_the_processes() -> set[str]:
    """The variables gunicorn.conf.py, the entrypoint (and its database wait) and
    prometheus-client's multiprocess mode read."""
    names = set(re.findall(r'(?:_int\(|os\.environ\.get\()"([A-Z_]+)"', GUNICORN_CONF.read_text()))
    names |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', ENTRYPOINT.read_text()))
    names |= set(re.findall(r"\$\{?([A-Z_]+)", ENTRYPOINT.read_text()))
    return names | {"PROMETHEUS_MULTIPROC_DIR"}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_variable_the_manifests_set_is_one_the_app_reads(built, kustomization):
    objs = built[kustomization]
    given = set(settings(objs)) | secret_names(objs) | set(image_env()) - {"PATH", "PYTHONDONTWRITEBYTECODE",
                                                                          "PYTHONUNBUFFERED", "FLASK_APP"}
    for spec in pod_specs(objs).values():
        for container in containers(spec):
            given |= {e["name"] for e in container.get("env", [])}
            refs = [r[k]["name"] for r in container["envFrom"] for k in r]
            assert len(refs) == 2 and all(ref.startswith("provider-admin") for ref in refs)
    known = names_read_by_the_app() | names_read_by_the_processes()
    assert given - known == set()
    assert "PROVIDER_ADMIN_SECRET_KEY" in names_read_by_the_app()  # the parse above finds real names
    # The keys and DATABASE_URL come from the Secret, never from the ConfigMap.
    assert secret_names(objs) == SECRET_NAMES
    assert not SECRET_NAMES & set(settings(objs))
    assert settings(objs)["PROVIDER_ADMIN_AUTO_MIGRATE"] == "false"  # the Job migrates, once


# --- Who talks to whom: the NetworkPolicies -------------------------------------------------

METADATA = ("169.254.169.254", "fd00:ec2::254")  # the cloud metadata service, IPv4 and IPv6
KUBE_DNS = ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"})
API_SERVER = "203.0.113.10"  # a provider's cluster, outside the pod network


def pod_labels(objs: list[dict]) -> dict[str, dict]:
    """Each workload's pod labels, by its component label."""
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]["metadata"]["labels"]
            for o in objs if o["kind"] in ("Deployment", "Job")}


def selects(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector's verdict ({} selects everything)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for term in selector.get("matchExpressions", []):
        present, value = term["key"] in labels, labels.get(term["key"])
        if not {"In": present and value in term.get("values", []),
                "NotIn": not present or value not in term.get("values", []),
                "Exists": present, "DoesNotExist": not present}[term["operator"]]:
            return False
    return True


def rules(objs: list[dict], labels: dict, direction: str) -> list[dict] | None:
    """The rules that let traffic to (Ingress) or from (Egress) a pod with these labels; None
    when no policy isolates it that way (then everything is let through)."""
    policies = [p["spec"] for p in named(objs, "NetworkPolicy")
                if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], labels)]
    if not policies:
        return None
    return [rule for spec in policies for rule in spec.get(direction.lower(), [])]


def on_port(rule: dict, port: int, protocol: str) -> bool:
    return not rule.get("ports") or any(p.get("protocol", "TCP") == protocol and p.get("port", port) == port
                                        for p in rule["ports"])


def peer_matches(peer: dict, address: str | None = None, namespace: dict | None = None, pod: dict | None = None) -> bool:
    """Whether a rule's peer is an outside address, or a pod (its namespace's and its own labels)."""
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return (address is not None and ipaddress.ip_address(address) in ipaddress.ip_network(block["cidr"])
                and not any(ipaddress.ip_address(address) in ipaddress.ip_network(e) for e in block.get("except", [])))
    if pod is None:
        return False
    return (("namespaceSelector" not in peer or selects(peer["namespaceSelector"], namespace))
            and selects(peer.get("podSelector", {}), pod))


def allowed(objs: list[dict], labels: dict, direction: str, port: int, protocol: str = "TCP", **peer) -> bool:
    found = rules(objs, labels, direction)
    if found is None:
        return True
    side = "from" if direction == "Ingress" else "to"
    return any(on_port(rule, port, protocol) and (not rule.get(side) or any(peer_matches(p, **peer) for p in rule[side]))
               for rule in found)


def database_port(objs: list[dict]) -> int:
    """The port of DATABASE_URL in the example overlay's Secret (the README's too)."""
    lines = (DEPLOY / "overlays" / "example" / "secret.env.example").read_text().splitlines()
    url = next(line.split("=", 1)[1] for line in lines if line.startswith("DATABASE_URL="))
    return sa.engine.make_url(url).port or 5432


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_pod_is_isolated_by_network_policies_both_ways(built, kustomization):
    objs = built[kustomization]
    pods = pod_labels(objs)
    assert set(pods) == {"web", "scheduler", "migration"}
    for component, labels in pods.items():
        for direction in ("Ingress", "Egress"):
            assert rules(objs, labels, direction) is not None, f"no {direction} policy selects the {component} pods"
    # Nothing in the namespace, even a pod an overlay adds, is left open.
    assert rules(objs, {"app": "added-later"}, "Ingress") == rules(objs, {"app": "added-later"}, "Egress") == []
    for policy in named(objs, "NetworkPolicy"):
        assert policy["metadata"]["namespace"] == one(objs, "Deployment", "provider-admin-web")["metadata"]["namespace"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_only_the_ingress_controller_and_monitoring_reach_the_web_on_its_port(built, kustomization):
    objs = built[kustomization]
    pods = pod_labels(objs)
    web = one(objs, "Deployment", "provider-admin-web")["spec"]["template"]["spec"]["containers"][0]
    port = web["ports"][0]["containerPort"]
    web_rules = rules(objs, pods["web"], "Ingress")
    assert [p["port"] for rule in web_rules for p in rule["ports"]] == [port, port]
    assert all(rule.get("from") for rule in web_rules), "a rule without `from` lets everyone in"
    controller = {"base": "ingress-nginx", "example overlay": "traefik"}[kustomization]
    for namespace in (controller, "monitoring"):
        labels = {"kubernetes.io/metadata.name": namespace}
        assert allowed(objs, pods["web"], "Ingress", port, namespace=labels, pod={"app": "x"}), namespace
        assert not allowed(objs, pods["web"], "Ingress", port + 1, namespace=labels, pod={"app": "x"})
    for namespace in ("default", "provider-admin-workspaces", {"base": "traefik"}.get(kustomization, "ingress-nginx")):
        assert not allowed(objs, pods["web"], "Ingress", port, namespace={"kubernetes.io/metadata.name": namespace},
                           pod={"app": "x"}), namespace
    assert not allowed(objs, pods["web"], "Ingress", port, address="198.51.100.7")
    for component in ("scheduler", "migration"):
        assert rules(objs, pods[component], "Ingress") == [], f"the {component} pods accept connections"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pods_reach_dns_the_database_and_clusters_but_never_the_metadata_service(built, kustomization):
    objs = built[kustomization]
    pods = pod_labels(objs)
    db_port = database_port(objs)
    dns_namespace, dns_pod = KUBE_DNS
    for component, labels in pods.items():
        for protocol in ("UDP", "TCP"):
            assert allowed(objs, labels, "Egress", 53, protocol, namespace=dns_namespace, pod=dns_pod), component
        assert allowed(objs, labels, "Egress", db_port, address="198.51.100.7"), component  # outside the cluster
        assert allowed(objs, labels, "Egress", db_port, namespace={"kubernetes.io/metadata.name": "databases"},
                       pod={"app": "postgresql"}), component
        for address in METADATA:
            for port in (80, 53, db_port, 443):
                assert not allowed(objs, labels, "Egress", port, address=address), (component, address, port)
        reaches_clusters = all(allowed(objs, labels, "Egress", p, address=a)
                               for a in (API_SERVER, "2001:db8::10") for p in (443, 6443, 16443))
        assert reaches_clusters == (component in ("web", "scheduler")), component
        assert allowed(objs, labels, "Egress", 6443, address=API_SERVER) == reaches_clusters
    # Every ipBlock that spans the metadata address leaves it out, and every rule names its peers.
    for policy in named(objs, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to"), policy["metadata"]["name"]
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    for address in METADATA:
                        assert not peer_matches(peer, address=address), (policy["metadata"]["name"], peer)


# --- The built-in provider's RBAC --------------------------------------------------------------

def role_rules(**needs) -> list[dict]:
    return [{"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
            for group, resources, verbs in permissions.rules(**needs)]


def test_the_role_grants_exactly_what_the_builtin_provider_needs(base):
    given = settings(base)
    namespace = given["PROVIDER_ADMIN_BUILTIN_NAMESPACE"]
    role = one(base, "Role")
    assert role["metadata"]["namespace"] == namespace
    assert role["rules"] == role_rules(**BUILTIN_NEEDS)
    account = one(base, "ServiceAccount")["metadata"]
    subject = [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]
    for component in ("web", "scheduler"):
        assert pod_specs(base)[component]["serviceAccountName"] == account["name"]
    binding = one(base, "RoleBinding")
    assert binding["metadata"]["namespace"] == namespace and binding["subjects"] == subject
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    # Cluster-wide, what a provider's bootstrap reads: storage classes and nodes.
    bootstrap = kube.bootstrap_manifest(provider_name="x", namespace=namespace)
    assert one(base, "ClusterRole")["rules"] == one(bootstrap, "ClusterRole")["rules"]
    cluster_binding = one(base, "ClusterRoleBinding")
    assert cluster_binding["subjects"] == subject
    assert cluster_binding["roleRef"]["name"] == one(base, "ClusterRole")["metadata"]["name"]
    marker = one(base, "ConfigMap", permissions.MARKER_NAME)
    assert marker["metadata"]["namespace"] == namespace
    assert marker["data"][permissions.MARKER_KEY] == given["PROVIDER_ADMIN_BUILTIN_PROVIDER"]
    assert marker["data"][permissions.MARKER_GRANTS_KEY] == permissions.grants(**BUILTIN_NEEDS)
    one(base, "Namespace", namespace)


def test_the_health_check_finds_the_builtin_provider_ready_with_these_objects(base):
    """The manifests' Role and marker in a Kubernetes API whose access reviews follow the
    Role: a full check with every feature on passes, first by the provider's name, then by
    its id once the marker records it (README "Production")."""
    given = settings(base)
    name, namespace = given["PROVIDER_ADMIN_BUILTIN_PROVIDER"], given["PROVIDER_ADMIN_BUILTIN_NAMESPACE"]
    role, marker = one(base, "Role"), one(base, "ConfigMap", permissions.MARKER_NAME)
    uid = "0f6c3c2e-5b1e-4d55-9b8e-2f3f1c1d9a01"
    with KubeAPI() as api:
        api.put("v1/namespaces", None, namespace, {"kind": "Namespace"})
        api.put("rbac.authorization.k8s.io/v1/roles", namespace, role["metadata"]["name"],
                {"kind": "Role", "rules": role["rules"]})
        api.put("v1/configmaps", namespace, permissions.MARKER_NAME, {"kind": "ConfigMap", "data": marker["data"]})
        api.rbac_role = (namespace, role["metadata"]["name"])

        def check():
            return kube.check(api.connection(namespace=namespace), provider_name=name, provider_uid=uid,
                              full=True, **BUILTIN_NEEDS)

        by_name = check()
        assert by_name.ok, by_name.message
        assert by_name.warnings and "does not record this provider's id" in by_name.warnings[0]
        api.put("v1/configmaps", namespace, permissions.MARKER_NAME,
                {"kind": "ConfigMap", "data": {**marker["data"], permissions.MARKER_UID_KEY: uid}})
        by_id = check()
        assert (by_id.ok, by_id.warnings) == (True, []), by_id.message
        assert len(api.reviews()) >= 2 * len(permissions.required_permissions(**BUILTIN_NEEDS))


# --- The README's production section deploys with these files --------------------------------

def production_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Production\n", 1)[1].split("\n### Probes\n", 1)[0]


def test_the_readmes_commands_name_the_objects_the_manifests_make(base):
    section = production_section()
    web = one(base, "Deployment", "provider-admin-web")
    namespace = web["metadata"]["namespace"]
    secret = [r["secretRef"]["name"] for r in web["spec"]["template"]["spec"]["containers"][0]["envFrom"]
              if "secretRef" in r]
    created = re.search(r"kubectl -n (\S+) create secret generic (\S+) \\\n((?:.*\\\n)*.*)\n", section)
    assert created and (created.group(1), [created.group(2)]) == (namespace, secret)
    assert set(re.findall(r"--from-literal=(\w+)=", created.group(3))) == SECRET_NAMES == secret_names(base)
    for path in re.findall(r"kubectl apply -[fk] (\S+)", section):
        assert (ROOT / path).exists(), path
    job = one(base, "Job")["metadata"]
    assert re.findall(r"kubectl -n (\S+) (?:wait --for=condition=complete job/|delete job )(\S+)", section) \
        == [(job["namespace"], job["name"])] * 3
    assert f"kubectl -n {namespace} rollout status deployment/{web['metadata']['name']}" in section
    marker = one(base, "ConfigMap", permissions.MARKER_NAME)["metadata"]
    assert f"kubectl -n {marker['namespace']} patch configmap {marker['name']} --type merge" in section
    assert f'\\"{permissions.MARKER_UID_KEY}\\": \\"$uid\\"' in section
    # The commands that make the keys make usable ones.
    for name in ("PROVIDER_ADMIN_SECRET_KEY", "PROVIDER_ADMIN_ENCRYPTION_KEY"):
        code = re.search(rf"{name}=\"\$\(python3 -c '([^']+)'\)\"", section).group(1)
        made = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        assert len(made) >= 32
        if name.endswith("ENCRYPTION_KEY"):
            from cryptography.fernet import Fernet

            Fernet(made)


def test_the_readme_lists_the_variables_gunicorn_reads():
    table = re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \|", production_section(), re.M)
    documented = {name for cell in table for name in re.findall(r"`([A-Z_]+)`", cell)}
    read = set(re.findall(r'(?:_int\(|os\.environ\.get\()"([A-Z_]+)"', GUNICORN_CONF.read_text()))
    assert documented == read - {"PROMETHEUS_MULTIPROC_DIR", "PROVIDER_ADMIN_TRUSTED_PROXIES"}
    commands = set(re.findall(r"`(\w+)`(?: \(|,)", production_section().split("takes a command:", 1)[1][:400]))
    assert entrypoint_commands() <= commands
