"""deploy/k8s, parsed (no cluster here)."""

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stagegate.errors import InvalidInputError
from stagegate.settings import PLAN_CUT_FIELDS, load_settings, variable
from stagegate.sizes import parse_size
from unit.deploy.helpers import (
    AWS_CREDENTIALS,
    AWS_ENV,
    COMPOSE,
    IMAGE,
    K8S,
    STAGEGATE_ENV,
    VERSION,
    Invocation,
    compose,
    containers,
    dockerfile_instructions,
    k8s_documents,
    k8s_files,
    k8s_object,
    k8s_objects,
    pod_specs,
    stagegate_argv,
)

NAMESPACE = "stagegate"
# Objects of no namespace: the workers' one grant (worker-rbac.yaml).
CLUSTER_WIDE = ("ClusterRole", "ClusterRoleBinding")
# Downward-API variables the manifests define for command-line expansion, not read by stagegate.
DOWNWARD_ENV = {"NODE_NAME", "POD_NAME", "POD_IP", "POD_NAMESPACE", "POD_UID"}
# Applied by hand (see kustomization.yaml): placeholders to fill in, and a pod for the jobs' namespace.
NOT_IN_KUSTOMIZATION = {"secret.template.yaml", "example-training-pod.yaml"}
# The one container allowed to run as root: it chowns the worker's hostPath root for the image's user.
ROOT_INIT = "prepare-root"
PLACEHOLDER = "REPLACE_ME"
# The ledger as its schema's owner: for the db-upgrade Job only.
OWNER_SECRET = "stagegate-db-owner"


def _image_uid() -> int:
    user = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"][-1]
    return int(user.split(":")[0])


def _all_containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [(where, spec, c) for where, spec in pod_specs() for c in containers(spec)]


def _stagegate_containers() -> list[tuple[str, dict[str, Any]]]:
    return [(where, c) for where, _, c in _all_containers() if c["image"] == IMAGE]


def _invocation(container: dict[str, Any]) -> Invocation:
    argv = stagegate_argv(container.get("command"), container.get("args"), container["image"])
    assert argv is not None, f"{container['name']} does not run stagegate"
    return Invocation(argv)


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def _field_ref(container: dict[str, Any], name: str) -> str:
    return str(_env(container)[name]["valueFrom"]["fieldRef"]["fieldPath"])


def _volume(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = [v for v in spec.get("volumes", []) if v["name"] == name]
    assert len(found) == 1, name
    return found[0]


def _mount_at(
    spec: dict[str, Any], container: dict[str, Any], path: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == path]
    assert len(mounts) == 1, f"{container['name']}: nothing mounted at {path}"
    return mounts[0], _volume(spec, mounts[0]["name"])


def _pod(kind: str, name: str) -> dict[str, Any]:
    obj = k8s_object(kind, name)
    return obj["spec"] if kind == "Pod" else obj["spec"]["template"]["spec"]


def _one_container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in containers(spec) if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


# --- every file, every object


@pytest.mark.parametrize("path", k8s_files(), ids=lambda p: p.name)
def test_every_file_parses(path: Path) -> None:
    assert k8s_documents(path)


def test_the_expected_files_are_there() -> None:
    names = {path.name for path in k8s_files()}
    assert {
        "namespace.yaml",
        "secret.template.yaml",
        "configmap.yaml",
        "api.yaml",
        "worker-daemonset.yaml",
        "example-training-pod.yaml",
        "kustomization.yaml",
    } <= names


def test_every_object_has_api_version_kind_and_name() -> None:
    for path, obj in k8s_objects():
        assert obj.get("apiVersion"), path.name
        assert obj.get("kind"), path.name
        assert obj.get("metadata", {}).get("name"), f"{path.name}: {obj.get('kind')} without a name"


def test_kustomization_lists_every_manifest_but_the_hand_applied_ones() -> None:
    (kustomization,) = k8s_documents(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in listed)
    expected = {p.name for p in k8s_files()} - {"kustomization.yaml"} - NOT_IN_KUSTOMIZATION
    assert listed == expected
    assert kustomization["namespace"] == NAMESPACE


def test_namespaced_objects_live_in_the_stagegate_namespace() -> None:
    for path, obj in k8s_objects():
        if path.name == "example-training-pod.yaml" or obj["kind"] in ("Namespace", *CLUSTER_WIDE):
            continue  # the example belongs in the namespace of the jobs
        assert obj["metadata"].get("namespace") == NAMESPACE, f"{path.name}: {obj['kind']}"
    assert k8s_object("Namespace", NAMESPACE)


# --- images


def test_one_stagegate_image_everywhere() -> None:
    """Every image called stagegate, in compose and in the manifests, is the same image."""
    images = {c["image"] for _, _, c in _all_containers()}
    images |= {s["image"] for s in compose()["services"].values()}
    ours = {image for image in images if image.rsplit("/", 1)[-1].split(":")[0] == "stagegate"}
    assert ours == {IMAGE}


def test_kustomization_points_the_image_at_a_registry_with_the_same_tag() -> None:
    (kustomization,) = k8s_documents(K8S / "kustomization.yaml")
    (entry,) = kustomization["images"]
    assert entry["name"] == IMAGE.split(":")[0]
    assert entry["newTag"] == VERSION
    assert entry["newName"].rsplit("/", 1)[-1] == "stagegate"
    assert COMPOSE.is_file()


# --- containers: resources, security


def test_every_container_has_resource_limits() -> None:
    for where, _, c in _all_containers():
        limits = c.get("resources", {}).get("limits", {})
        assert {"cpu", "memory"} <= set(limits), f"{where}: {c['name']}"


def test_every_container_drops_all_capabilities_and_privilege_escalation() -> None:
    for where, _, c in _all_containers():
        context = c.get("securityContext", {})
        assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: {c['name']}"
        assert context.get("allowPrivilegeEscalation") is False, f"{where}: {c['name']}"
        assert context.get("privileged") is not True


def test_every_container_but_the_chown_step_runs_as_non_root() -> None:
    for where, spec, c in _all_containers():
        if c["name"] == ROOT_INIT:
            continue
        pod_context, context = spec.get("securityContext", {}), c.get("securityContext", {})
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, f"{where}: {c['name']}"
        assert context.get("runAsUser", pod_context.get("runAsUser")) != 0


def test_the_root_step_can_only_chown_the_worker_root() -> None:
    spec = _pod("DaemonSet", "stagegate-worker")
    step = _one_container(spec, ROOT_INIT)
    assert step in spec["initContainers"]
    context = step["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert context["readOnlyRootFilesystem"] is True
    uid = _image_uid()
    worker = _invocation(_one_container(spec, "worker"))
    assert step["command"] == ["chown", f"{uid}:{uid}", worker.one("--root")]
    assert [c["name"] for _, _, c in _all_containers() if c["name"] == ROOT_INIT] == [ROOT_INIT]


def test_stagegate_pods_run_as_the_images_user() -> None:
    uid = _image_uid()
    for where, spec in pod_specs():
        if any(c["image"] == IMAGE for c in containers(spec)):
            assert spec["securityContext"]["runAsUser"] == uid, where


def test_stagegate_containers_have_read_only_root_filesystems() -> None:
    for where, c in _stagegate_containers():
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, f"{where}: {c['name']}"


def test_every_mount_names_a_volume_of_its_pod() -> None:
    for where, spec, c in _all_containers():
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for mount in c.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{where}: {c['name']} mounts {mount['name']}"


# --- environment, Secrets, ConfigMap


def test_stagegate_containers_set_only_variables_stagegate_reads() -> None:
    for where, c in _stagegate_containers():
        assert set(_env(c)) <= STAGEGATE_ENV | AWS_ENV | DOWNWARD_ENV, f"{where}: {c['name']}"
    configmap = k8s_object("ConfigMap", "stagegate")
    assert set(configmap["data"]) <= STAGEGATE_ENV | AWS_ENV


def test_command_line_variables_are_defined() -> None:
    """Kubernetes leaves an undefined $(VAR) in the command line as it is, silently."""
    for where, _, c in _all_containers():
        words = [*c.get("command", []), *c.get("args", [])]
        for name in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(words)):
            assert name in _env(c), f"{where}: {c['name']} uses $({name})"


def test_secret_and_configmap_references_resolve() -> None:
    secrets = {obj["metadata"]["name"]: obj for _, obj in k8s_objects() if obj["kind"] == "Secret"}
    configmaps = {obj["metadata"]["name"] for _, obj in k8s_objects() if obj["kind"] == "ConfigMap"}
    for where, _, c in _all_containers():
        for entry in c.get("envFrom", []):
            assert entry["configMapRef"]["name"] in configmaps, where
        for entry in c.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref is None:
                continue
            assert ref["name"] in secrets, f"{where}: Secret {ref['name']}"
            assert ref["key"] in secrets[ref["name"]]["stringData"], f"{where}: {ref['name']}/{ref['key']}"


_CREDENTIAL_SHAPES = [
    re.compile(r"(AKIA|ASIA)[A-Z0-9]{16}"),  # AWS access key id
    re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),  # AWS secret key
    re.compile(r"-----BEGIN"),  # PEM keys
    re.compile(r"\b(ghp|glpat|xox[bp])[-_][A-Za-z0-9]"),  # common tokens
]


def test_secrets_hold_placeholders_only() -> None:
    secrets = [(path, obj) for path, obj in k8s_objects() if obj["kind"] == "Secret"]
    assert secrets
    for path, secret in secrets:
        # Base64 `data` cannot be told from a real value at a glance: templates use stringData.
        assert "data" not in secret, path.name
        for key, value in secret["stringData"].items():
            assert PLACEHOLDER in value, f"{path.name}: {key}"
            assert not any(shape.search(value) for shape in _CREDENTIAL_SHAPES), f"{path.name}: {key}"
            url = urlsplit(value)
            if url.scheme and url.password is not None:
                assert url.password == PLACEHOLDER, f"{path.name}: {key} carries a password"


def test_secret_template_covers_what_the_services_need() -> None:
    secret = k8s_object("Secret", "stagegate")
    assert {"STAGEGATE_DATABASE_URL", "STAGEGATE_BROKER_URL"} <= set(secret["stringData"])
    assert set(secret["stringData"]) <= STAGEGATE_ENV | AWS_ENV
    assert secret["stringData"]["STAGEGATE_DATABASE_URL"].startswith("postgresql+psycopg://")
    owner = k8s_object("Secret", OWNER_SECRET)
    assert set(owner["stringData"]) == {"STAGEGATE_DATABASE_URL"}, "the owner's URL and nothing else"
    assert owner["stringData"]["STAGEGATE_DATABASE_URL"].startswith("postgresql+psycopg://")
    # Marked as a template where a reader starts: the comment above the manifest.
    header = (K8S / "secret.template.yaml").read_text().split("apiVersion")[0]
    assert "TEMPLATE" in header
    assert PLACEHOLDER in header


# --- the API


def test_api_deployment_serves_with_probes() -> None:
    deployment = k8s_object("Deployment", "stagegate-api")
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (api,) = deployment["spec"]["template"]["spec"]["containers"]
    serve = _invocation(api)
    assert serve.subcommand == "serve"
    assert serve.one("--host") == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert int(serve.one("--port")) in ports.values()
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = api[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == int(serve.one("--port"))


def test_api_gets_no_s3_credentials() -> None:
    (api,) = _pod("Deployment", "stagegate-api")["containers"]
    assert not AWS_CREDENTIALS & set(_env(api))


def test_service_selects_the_api_pods_and_port() -> None:
    service = k8s_object("Service", "stagegate-api")
    template = k8s_object("Deployment", "stagegate-api")["spec"]["template"]
    assert service["spec"]["selector"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    (api,) = template["spec"]["containers"]
    names = {p["name"] for p in api["ports"]}
    numbers = {p["containerPort"] for p in api["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in names | numbers


def test_disruption_budget_covers_the_api_pods() -> None:
    budget = k8s_object("PodDisruptionBudget", "stagegate-api")
    template = k8s_object("Deployment", "stagegate-api")["spec"]["template"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert budget["spec"]["minAvailable"] < k8s_object("Deployment", "stagegate-api")["spec"]["replicas"]


# --- the workers


def test_workers_run_on_gpu_nodes_named_after_their_node() -> None:
    daemonset = k8s_object("DaemonSet", "stagegate-worker")
    spec = daemonset["spec"]["template"]["spec"]
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= (
        daemonset["spec"]["template"]["metadata"]["labels"].items()
    )
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    worker = _one_container(spec, "worker")
    assert _field_ref(worker, "NODE_NAME") == "spec.nodeName"
    invocation = _invocation(worker)
    assert invocation.subcommand == "worker"
    assert invocation.one("--node") == "$(NODE_NAME)"
    assert parse_size(invocation.one("--capacity")) > 0


def test_worker_root_is_the_nodes_nvme_at_the_same_path() -> None:
    spec = _pod("DaemonSet", "stagegate-worker")
    root = _invocation(_one_container(spec, "worker")).one("--root")
    mount, volume = _mount_at(spec, _one_container(spec, "worker"), root)
    assert not mount.get("readOnly", False)
    assert volume["hostPath"]["type"] == "DirectoryOrCreate"
    # Same path inside and out, so the dataset paths a worker reports hold on the node too.
    assert volume["hostPath"]["path"] == root


# --- the example training pod


def test_training_pod_stages_its_dataset_onto_its_own_node_first() -> None:
    spec = _pod("Pod", "train-imagenet")
    init = spec["initContainers"][0]
    stage = _invocation(init)
    assert stage.subcommand == "stage"
    assert "--wait" in stage.flags
    assert stage.positionals == ["s3://datasets/imagenet"]
    assert stage.one("--node") == "$(NODE_NAME)"
    assert stage.one("--job") == "$(POD_NAME)"
    assert _field_ref(init, "NODE_NAME") == "spec.nodeName"
    assert _field_ref(init, "POD_NAME") == "metadata.name"
    assert spec["restartPolicy"] == "Never"


def test_training_pod_reaches_the_api_service_with_a_token_from_a_secret() -> None:
    init = _pod("Pod", "train-imagenet")["initContainers"][0]
    env = _env(init)
    url = urlsplit(env["STAGEGATE_URL"]["value"])
    service = k8s_object("Service", "stagegate-api")
    assert url.hostname is not None
    assert url.hostname.split(".")[:2] == [service["metadata"]["name"], service["metadata"]["namespace"]]
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    assert "secretKeyRef" in env["STAGEGATE_TOKEN"]["valueFrom"]
    assert "value" not in env["STAGEGATE_TOKEN"]


def test_training_pod_owns_its_staging_and_mounts_only_its_own_view_read_only() -> None:
    workers = _pod("DaemonSet", "stagegate-worker")
    worker_root = _invocation(_one_container(workers, "worker")).one("--root")
    spec = _pod("Pod", "train-imagenet")
    stage_init, wait_init = spec["initContainers"]
    assert "--owner-from-env" in _invocation(stage_init).flags
    for name, path in (("POD_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")):
        assert _field_ref(stage_init, name) == path
    train = _one_container(spec, "train")
    for container in (stage_init, wait_init, train):
        assert _field_ref(container, "POD_UID") == "metadata.uid"
    for container in (wait_init, train):
        mount, volume = _mount_at(spec, container, "/data")
        assert mount["readOnly"] is True and mount["subPathExpr"] == "$(POD_UID)"
        assert mount["mountPropagation"] == "HostToContainer"
        assert volume["hostPath"]["path"] == f"{worker_root}/views"
    # Nothing else of the node: not the workers' root, which holds every cached dataset.
    host_paths = [v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v]
    assert host_paths == [f"{worker_root}/views"]
    assert spec["nodeSelector"] == workers["nodeSelector"]


def test_workers_may_get_pods_and_jobs_and_nothing_else() -> None:
    workers = _pod("DaemonSet", "stagegate-worker")
    account = k8s_object("ServiceAccount", workers["serviceAccountName"])
    assert account["metadata"]["namespace"] == NAMESPACE and workers["automountServiceAccountToken"] is True
    role = k8s_object("ClusterRole", "stagegate-pin-owners")
    assert sorted(
        (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]
    ) == [
        (("",), ("pods",), ("get",)),
        (("batch",), ("jobs",), ("get",)),
    ]
    binding = k8s_object("ClusterRoleBinding", "stagegate-pin-owners")
    assert binding["roleRef"]["name"] == "stagegate-pin-owners"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    others = [
        o
        for _, o in k8s_objects()
        if o["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    ]
    assert len(others) == 2, "no other grant"


def test_the_views_overlay_turns_views_on_with_the_privilege_they_need() -> None:
    overlay = K8S.parent / "k8s-views"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../k8s"]
    (patch,) = kustomization["patches"]
    daemonset = yaml.safe_load((overlay / patch["path"]).read_text())
    assert (daemonset["kind"], daemonset["metadata"]["name"]) == ("DaemonSet", "stagegate-worker")
    (worker,) = daemonset["spec"]["template"]["spec"]["containers"]
    assert _env(worker)["STAGEGATE_VIEWS"]["value"] == "1"
    assert worker["securityContext"]["privileged"] is True
    (mount,) = worker["volumeMounts"]
    root = _invocation(_one_container(_pod("DaemonSet", "stagegate-worker"), "worker")).one("--root")
    assert mount["mountPath"] == root and mount["mountPropagation"] == "Bidirectional"


# --- the database roles


def _secret_refs(container: dict[str, Any]) -> set[str]:
    """Every Secret a container reads, by env entry or envFrom."""
    refs = {
        entry["valueFrom"]["secretKeyRef"]["name"]
        for entry in container.get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    refs |= {entry["secretRef"]["name"] for entry in container.get("envFrom", []) if "secretRef" in entry}
    return refs


def _username(secret: str) -> str | None:
    return urlsplit(k8s_object("Secret", secret)["stringData"]["STAGEGATE_DATABASE_URL"]).username


def test_the_db_upgrade_job_migrates_as_the_owner_and_grants_the_services_role() -> None:
    job = k8s_object("Job", "stagegate-db-upgrade")
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] in ("OnFailure", "Never")
    (container,) = spec["containers"]
    upgrade = _invocation(container)
    assert upgrade.subcommand == "db upgrade"
    ref = _env(container)["STAGEGATE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (OWNER_SECRET, "STAGEGATE_DATABASE_URL")
    runtime = _username("stagegate")
    assert upgrade.one("--runtime-role") == runtime, "it grants the role the API and workers connect as"
    assert _username(OWNER_SECRET) != runtime
    assert _secret_refs(container) == {OWNER_SECRET}


def test_api_and_workers_never_get_the_owner_url() -> None:
    for where, c in _stagegate_containers():
        if where.endswith("Job/stagegate-db-upgrade"):
            continue
        assert OWNER_SECRET not in _secret_refs(c), f"{where}: {c['name']} reads the owner's URL"
        ref = _env(c).get("STAGEGATE_DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == "stagegate", f"{where}: {c['name']}"
    for kind, name in (("Deployment", "stagegate-api"), ("DaemonSet", "stagegate-worker")):
        assert any("STAGEGATE_DATABASE_URL" in _env(c) for c in containers(_pod(kind, name))), name


# --- metrics and network policy


MONITORING = K8S / "monitoring"


def _worker_container() -> dict[str, Any]:
    return _one_container(_pod("DaemonSet", "stagegate-worker"), "worker")


def _effective_env(container: dict[str, Any]) -> dict[str, str]:
    """The plain values a container gets: from its ConfigMaps (envFrom), then its own env."""
    configmaps = {o["metadata"]["name"]: o for _, o in k8s_objects() if o["kind"] == "ConfigMap"}
    found: dict[str, str] = {}
    for entry in container.get("envFrom", []):
        found.update(configmaps[entry["configMapRef"]["name"]].get("data", {}))
    found.update({name: str(e["value"]) for name, e in _env(container).items() if "value" in e})
    return found


def test_the_api_cuts_plans_as_the_workers_do() -> None:
    # Another policy file or batch size in the API: it would never find the workers' plans
    # to follow at submission (safe, but every request would wait for a worker's plan step).
    (api,) = _pod("Deployment", "stagegate-api")["containers"]
    names = [variable(f) for f in PLAN_CUT_FIELDS]
    api_env, worker_env = _effective_env(api), _effective_env(_worker_container())
    assert {n: api_env.get(n) for n in names} == {n: worker_env.get(n) for n in names}


def test_worker_metrics_listen_on_the_pod_ip_at_a_declared_port() -> None:
    worker = _worker_container()
    invocation = _invocation(worker)
    assert invocation.one("--metrics-host") == "$(POD_IP)"
    assert _field_ref(worker, "POD_IP") == "status.podIP"
    declared = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert declared["metrics"] == int(invocation.one("--metrics-port"))
    assert set(declared) == {"metrics", PEER_PORT}


def _policies() -> dict[str, dict[str, Any]]:
    objects = k8s_objects()
    return {doc["metadata"]["name"]: doc["spec"] for _, doc in objects if doc["kind"] == "NetworkPolicy"}


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = policy["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def test_ingress_is_denied_but_for_what_each_component_serves() -> None:
    policies = _policies()
    deny = [s for s in policies.values() if s["podSelector"] == {} and "Ingress" in s["policyTypes"]]
    assert deny and all(not s.get("ingress") for s in deny), "a default deny of every pod's ingress"
    pod_labels = {
        "worker": k8s_object("DaemonSet", "stagegate-worker")["spec"]["template"]["metadata"]["labels"],
        "api": k8s_object("Deployment", "stagegate-api")["spec"]["template"]["metadata"]["labels"],
    }
    opened: dict[str, list[dict[str, Any]]] = {"worker": [], "api": []}
    for spec in policies.values():
        for component, labels in pod_labels.items():
            if spec["podSelector"] != {} and _selects(spec, labels):
                opened[component] += spec.get("ingress", [])
    # Workers: only the metrics port and the peer port, each only from a named source (never
    # "from anywhere"): Prometheus for metrics, the workers themselves for peers.
    assert opened["worker"], "Prometheus could not scrape the workers"
    ports = set()
    for rule in opened["worker"]:
        assert [p["port"] for p in rule["ports"]] in (["metrics"], [PEER_PORT])
        ports.add(rule["ports"][0]["port"])
        assert rule.get("from"), "worker ports open to every pod"
        for peer in rule["from"]:
            if rule["ports"][0]["port"] == "metrics":
                assert peer.get("namespaceSelector") and peer.get("podSelector"), peer
    assert ports == {"metrics", PEER_PORT}
    # The API: only its HTTP port.
    assert opened["api"] and all([p["port"] for p in rule["ports"]] == ["http"] for rule in opened["api"])


# --- peer fan-out


PEER_PORT = "peer"
PEER_SECRET = "stagegate-peer"


def _worker_labels() -> dict[str, str]:
    labels: dict[str, str] = k8s_object("DaemonSet", "stagegate-worker")["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def _declared_port(container: dict[str, Any], name: str) -> int:
    (port,) = [p for p in container["ports"] if p["name"] == name]
    assert port["protocol"] == "TCP"
    return int(port["containerPort"])


def test_workers_serve_peers_on_the_pod_ip_at_the_declared_peer_port() -> None:
    worker = _worker_container()
    env = _env(worker)
    port = _declared_port(worker, PEER_PORT)
    assert env["STAGEGATE_PEER_LISTEN"]["value"] == f"$(POD_IP):{port}"
    assert _field_ref(worker, "POD_IP") == "status.podIP"
    # Kubernetes expands $(POD_IP) in a value only if POD_IP comes earlier in the list.
    names = [entry["name"] for entry in worker["env"]]
    assert names.index("POD_IP") < names.index("STAGEGATE_PEER_LISTEN")
    # The other workers reach it at the pod's IP: the default URL (http://<listen>) or the same.
    assert (
        env.get("STAGEGATE_PEER_URL", {}).get("value", f"http://$(POD_IP):{port}")
        == f"http://$(POD_IP):{port}"
    )


def test_the_peer_credential_is_a_mounted_secret_file_never_a_variable() -> None:
    for where, c in _stagegate_containers():
        assert "STAGEGATE_PEER_SECRET" not in _env(c), f"{where}: {c['name']}"
        for entry in c.get("envFrom", []):
            assert "secretRef" not in entry, f"{where}: {c['name']} takes a whole Secret as variables"
    assert "STAGEGATE_PEER_SECRET" not in k8s_object("ConfigMap", "stagegate")["data"]
    for _, obj in k8s_objects():
        if obj["kind"] == "Secret":
            assert "STAGEGATE_PEER_SECRET" not in obj["stringData"], obj["metadata"]["name"]
    spec = _pod("DaemonSet", "stagegate-worker")
    worker = _worker_container()
    path = Path(_env(worker)["STAGEGATE_PEER_SECRET_FILE"]["value"])
    mount, volume = _mount_at(spec, worker, str(path.parent))
    assert mount["readOnly"] is True
    (item,) = volume["secret"]["items"]
    assert item["path"] == path.name
    assert volume["secret"]["secretName"] == PEER_SECRET
    assert item["key"] in k8s_object("Secret", PEER_SECRET)["stringData"]
    # Not readable by others; the worker reads it through the pod's fsGroup.
    assert volume["secret"]["defaultMode"] & 0o007 == 0
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"] == _image_uid()


def test_only_the_workers_mount_the_peer_credential() -> None:
    for where, spec in pod_specs():
        secrets = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        assert (PEER_SECRET in secrets) == where.endswith("DaemonSet/stagegate-worker"), where


def test_an_unfilled_peer_secret_template_stops_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of the template applied unchanged must not give every cluster the same credential."""
    (value,) = k8s_object("Secret", PEER_SECRET)["stringData"].values()
    assert PLACEHOLDER in value
    secret = tmp_path / "secret"
    secret.write_text(value)
    monkeypatch.setenv("STAGEGATE_PEER_SECRET_FILE", str(secret))
    with pytest.raises(InvalidInputError, match="at least 16 characters"):
        load_settings().peer_credential()


def test_only_workers_in_the_namespace_reach_the_peer_port() -> None:
    """The hostile case: a training pod (any namespace) or anything outside the cluster opening
    the peer port to try credentials or requests on it. Only worker pods may connect."""
    worker_labels = _worker_labels()
    rules = [
        rule
        for spec in _policies().values()
        if _selects(spec, worker_labels)
        for rule in spec.get("ingress", [])
        if PEER_PORT in [p["port"] for p in rule.get("ports", [])]
    ]
    assert rules, "no policy opens the peer port: peers could not reach each other"
    for rule in rules:
        assert [p["port"] for p in rule["ports"]] == [PEER_PORT]
        assert rule.get("from"), "the peer port open to every pod"
        for peer in rule["from"]:
            # A podSelector alone means this namespace only; no namespaceSelector, no ipBlock.
            assert set(peer) == {"podSelector"}, peer
            assert peer["podSelector"]["matchLabels"] == worker_labels
    training = k8s_object("Pod", "train-imagenet")
    labels = training["metadata"].get("labels", {})
    assert not all(labels.get(k) == v for k, v in worker_labels.items()), "a training pod labelled a worker"


def test_the_service_monitor_scrapes_the_workers_metrics_port() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    docs = [doc for name in kustomization["resources"] for doc in k8s_documents(MONITORING / name)]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    pod_labels = k8s_object("DaemonSet", "stagegate-worker")["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["clusterIP"] == "None", "headless: one target per worker pod"
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"metrics": "metrics"}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    # Not in the main kustomization: a cluster without the Prometheus Operator has no ServiceMonitor kind.
    main = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert not any("monitoring" in r for r in main["resources"])


def test_training_pod_leases_its_pin_and_releases_it_when_training_ends() -> None:
    spec = _pod("Pod", "train-imagenet")
    init = spec["initContainers"][0]
    assert _invocation(init).one("--pin-ttl") == "12h"
    train = _one_container(spec, "train")
    (script,) = train["args"]
    # The release runs on EXIT (success or failure), so training must not be exec'd past it.
    assert "trap '" in script and "' EXIT" in script and "exec python3 train.py" not in script
    assert 'method="DELETE"' in script and '"/v1/stagings/" + s["id"]' in script
    env = _env(train)
    assert "secretKeyRef" in env["STAGEGATE_TOKEN"]["valueFrom"] and "value" not in env["STAGEGATE_TOKEN"]
    assert env["STAGEGATE_URL"] == _env(init)["STAGEGATE_URL"]
