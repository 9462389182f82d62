"""docker-compose.yml, the rehearsal, parsed (no Docker engine here)."""

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from stagegate.settings import PLAN_CUT_FIELDS, variable
from stagegate.sizes import parse_size
from unit.deploy.helpers import (
    AWS_CREDENTIALS,
    AWS_ENV,
    BROKER_URL,
    DATABASE_URL,
    IMAGE,
    ROOT,
    STAGEGATE_ENV,
    Invocation,
    compose,
)

SERVICES = {"postgres", "redis", "s3", "migrate", "api", "worker-a", "worker-b"}
# The long-running services, connected as the runtime role; `migrate` runs once, as the owner.
RUNTIME_SERVICES = ("api", "worker-a", "worker-b")
STAGEGATE_SERVICES = (*RUNTIME_SERVICES, "migrate")
WORKERS = ("worker-a", "worker-b")
INIT_ROLES = ROOT / "deploy" / "postgres" / "init-roles.sql"


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"][name]
    return service


def _invocation(name: str) -> Invocation:
    command = _service(name)["command"]
    # Exec form: a string command would go through a shell's word splitting instead.
    assert isinstance(command, list), name
    return Invocation(command)


def _environment(name: str) -> dict[str, str]:
    env = _service(name).get("environment", {})
    assert isinstance(env, dict), f"{name}: environment as a mapping"
    return {key: str(value) for key, value in env.items()}


def _volume_mounts(name: str) -> list[tuple[str, str]]:
    mounts = []
    for entry in _service(name).get("volumes", []):
        if isinstance(entry, dict):
            mounts.append((entry.get("source", ""), entry["target"]))
        else:
            source, _, rest = entry.partition(":")
            mounts.append((source, rest.split(":")[0]))
    return mounts


def _container_ports(name: str) -> set[int]:
    ports = set()
    for entry in _service(name).get("ports", []):
        ports.add(int(entry["target"]) if isinstance(entry, dict) else int(str(entry).rsplit(":", 1)[-1]))
    return ports


def test_compose_spec_without_a_version_key() -> None:
    assert "version" not in compose()


def test_exactly_the_rehearsal_services() -> None:
    assert set(compose()["services"]) == SERVICES


def test_backing_service_images_and_healthchecks() -> None:
    assert _service("postgres")["image"] == "postgres:16"
    assert "pg_isready" in " ".join(_service("postgres")["healthcheck"]["test"])
    assert _service("redis")["image"] == "redis:7"
    assert _service("redis")["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert _service("s3")["image"].split(":")[0] == "motoserver/moto"
    assert 5000 in _container_ports("s3")


@pytest.mark.parametrize("name", STAGEGATE_SERVICES)
def test_stagegate_services_run_the_image_built_here(name: str) -> None:
    service = _service(name)
    assert service["image"] == IMAGE
    assert service["build"] == "."
    assert (ROOT / "Dockerfile").is_file()


def test_api_serves_on_all_interfaces_at_8080() -> None:
    serve = _invocation("api")
    assert serve.subcommand == "serve"
    assert serve.one("--host") == "0.0.0.0"
    assert serve.one("--port") == "8080"
    assert 8080 in _container_ports("api")


def test_api_healthcheck_asks_healthz() -> None:
    probe = " ".join(_service("api")["healthcheck"]["test"])
    assert "http://127.0.0.1:8080/healthz" in probe


@pytest.mark.parametrize("name", WORKERS)
def test_workers_run_worker_with_a_root_on_their_own_volume(name: str) -> None:
    worker = _invocation(name)
    assert worker.subcommand == "worker"
    assert parse_size(worker.one("--capacity")) > 0
    root = worker.one("--root")
    sources = [source for source, target in _volume_mounts(name) if target == root]
    assert len(sources) == 1, f"{name}: --root {root} is not a mounted volume"
    assert sources[0] in compose()["volumes"], f"{name}: the root must be a named volume"


def test_each_worker_has_its_own_node_name_and_volume() -> None:
    nodes = [_invocation(name).one("--node") for name in WORKERS]
    assert len(set(nodes)) == len(nodes)
    roots = [
        source
        for name in WORKERS
        for source, target in _volume_mounts(name)
        if target == _invocation(name).one("--root")
    ]
    assert len(set(roots)) == len(roots), "two workers would share one 'NVMe'"


def test_every_depends_on_target_exists_and_is_waited_for() -> None:
    """Long-running services are waited for healthy; the one-shot `migrate` for its success."""
    services = compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on with conditions"
        for target, how in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            if services[target].get("restart") == "no":
                assert how["condition"] == "service_completed_successfully", f"{name} -> {target}"
                continue
            assert how["condition"] == "service_healthy", f"{name} -> {target}"
            assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"


@pytest.mark.parametrize("name", RUNTIME_SERVICES)
def test_stagegate_services_wait_for_the_ledger_and_broker(name: str) -> None:
    assert {"postgres", "redis"} <= set(_service(name)["depends_on"])


def test_every_named_volume_is_declared_and_used() -> None:
    declared = set(compose().get("volumes") or {})
    used = {
        source
        for name in compose()["services"]
        for source, _ in _volume_mounts(name)
        if source and not source.startswith(("/", ".", "~"))
    }
    assert used == declared


@pytest.mark.parametrize("name", STAGEGATE_SERVICES)
def test_stagegate_services_set_only_variables_stagegate_reads(name: str) -> None:
    env = _environment(name)
    assert set(env) <= STAGEGATE_ENV | AWS_ENV
    assert DATABASE_URL.match(env["STAGEGATE_DATABASE_URL"])
    if name in RUNTIME_SERVICES:
        assert BROKER_URL.match(env["STAGEGATE_BROKER_URL"])


def test_the_api_cuts_plans_as_the_workers_do() -> None:
    # As in the Kubernetes manifests (unit.deploy.test_k8s): the same plan key on both sides.
    names = [variable(f) for f in PLAN_CUT_FIELDS]
    api = {n: _environment("api").get(n) for n in names}
    for worker in WORKERS:
        assert {n: _environment(worker).get(n) for n in names} == api, worker


def _init_roles() -> dict[str, str]:
    """The login roles deploy/postgres/init-roles.sql creates, with their passwords."""
    found = re.findall(r"CREATE ROLE (\w+) LOGIN\b[^;]*PASSWORD '([^']*)'", INIT_ROLES.read_text())
    return dict(found)


def _owner_and_runtime() -> tuple[str, str]:
    owner = urlsplit(_environment("migrate")["STAGEGATE_DATABASE_URL"]).username
    assert owner is not None
    return owner, _invocation("migrate").one("--runtime-role")


def test_the_postgres_init_script_makes_an_owner_and_a_runtime_role_that_owns_nothing() -> None:
    assert (str(INIT_ROLES.relative_to(ROOT)), "/docker-entrypoint-initdb.d/10-init-roles.sql") in [
        (source.removeprefix("./"), target) for source, target in _volume_mounts("postgres")
    ]
    sql = INIT_ROLES.read_text()
    owner, runtime = _owner_and_runtime()
    assert owner != runtime
    assert {owner, runtime} <= set(_init_roles())
    assert f"ALTER DATABASE {_environment('postgres')['POSTGRES_DB']} OWNER TO {owner};" in sql
    (runtime_line,) = [line for line in sql.splitlines() if line.startswith(f"CREATE ROLE {runtime} ")]
    assert "NOSUPERUSER" in runtime_line
    # It gets everything else from `stagegate db upgrade`, which grants it no ownership.
    assert f"OWNER TO {runtime}" not in sql
    assert re.findall(rf"^(GRANT [^;]*) TO {runtime};", sql, re.MULTILINE) == [
        f"GRANT CONNECT ON DATABASE {_environment('postgres')['POSTGRES_DB']}"
    ]


def test_migrate_runs_db_upgrade_once_as_the_owner_before_the_service_starts() -> None:
    migrate = _service("migrate")
    assert migrate["restart"] == "no"
    assert _invocation("migrate").subcommand == "db upgrade"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in RUNTIME_SERVICES:
        assert _service(name)["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("name", RUNTIME_SERVICES)
def test_api_and_workers_never_get_the_owner_url(name: str) -> None:
    owner, runtime = _owner_and_runtime()
    env = _environment(name)
    assert urlsplit(env["STAGEGATE_DATABASE_URL"]).username == runtime
    owner_password = _init_roles()[owner]
    for key, value in env.items():
        assert owner not in value and owner_password not in value, f"{name}: {key} carries the owner's login"


def test_ledger_urls_match_the_postgres_service_and_the_roles_made_for_them() -> None:
    postgres = _environment("postgres")
    passwords = _init_roles()
    for name in STAGEGATE_SERVICES:
        url = urlsplit(_environment(name)["STAGEGATE_DATABASE_URL"])
        assert url.hostname == "postgres"
        assert url.port == 5432
        assert url.username in passwords, f"{name}: a role the init script does not make"
        assert url.username != postgres["POSTGRES_USER"], f"{name}: never the superuser"
        assert url.password == passwords[url.username]
        assert url.path == "/" + postgres["POSTGRES_DB"]


def test_broker_url_names_the_redis_service() -> None:
    for name in RUNTIME_SERVICES:
        url = urlsplit(_environment(name)["STAGEGATE_BROKER_URL"])
        assert (url.hostname, url.port) == ("redis", 6379)


def test_only_workers_get_s3_settings() -> None:
    assert not any(key.startswith("AWS_") for key in _environment("api"))
    for name in WORKERS:
        env = _environment(name)
        assert urlsplit(env["AWS_ENDPOINT_URL"]).hostname == "s3"
        assert urlsplit(env["AWS_ENDPOINT_URL"]).port in _container_ports("s3")
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)


def test_rehearsal_credentials_do_not_look_like_real_aws_keys() -> None:
    for name in WORKERS:
        env = _environment(name)
        for key in AWS_CREDENTIALS & set(env):
            assert not re.fullmatch(r"(AKIA|ASIA)[A-Z0-9]{16}", env[key])
            assert not re.fullmatch(r"[A-Za-z0-9/+]{40}", env[key])


# --- peer fan-out


def _peer_listen(name: str) -> tuple[str, int]:
    host, _, port = _environment(name)["STAGEGATE_PEER_LISTEN"].rpartition(":")
    return host, int(port)


@pytest.mark.parametrize("name", WORKERS)
def test_workers_serve_peers_on_the_compose_network_only(name: str) -> None:
    host, port = _peer_listen(name)
    # Every interface of the container, which is on the compose network only: the port is
    # declared (`expose`) for the other workers and never published on the host.
    assert host == "0.0.0.0"
    assert port in {int(p) for p in _service(name)["expose"]}
    assert port not in _container_ports(name), f"{name}: the peer port published on the host"
    url = urlsplit(_environment(name)["STAGEGATE_PEER_URL"])
    assert (url.scheme, url.hostname, url.port) == ("http", name, port), "reached by its service name"


def test_only_workers_serve_peers() -> None:
    for name in compose()["services"]:
        if name not in WORKERS:
            assert not any(k.startswith("STAGEGATE_PEER_") for k in _environment(name)), name
            assert not _service(name).get("secrets"), f"{name} gets the workers' credential"


@pytest.mark.parametrize("name", WORKERS)
def test_the_peer_credential_is_a_secret_file_never_a_variable(name: str) -> None:
    env = _environment(name)
    assert "STAGEGATE_PEER_SECRET" not in env
    path = env["STAGEGATE_PEER_SECRET_FILE"]
    # Compose mounts each secret a service names at /run/secrets/<name>.
    assert path.startswith("/run/secrets/")
    secret = path.removeprefix("/run/secrets/")
    assert secret in _service(name)["secrets"]
    source = ROOT / compose()["secrets"][secret]["file"]
    assert source.is_file()
    # As the worker reads it: at least 16 characters (stagegate.settings refuses fewer).
    assert len(source.read_text().strip()) >= 16
    assert "not-a-secret" in source.read_text(), "a rehearsal value, marked as one"
