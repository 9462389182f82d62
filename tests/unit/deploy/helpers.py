"""What the deployment files are checked against, and small readers for them.

The files are never run here (no Docker engine, no cluster), so the tests parse them and hold
them to the service contract: the CLI's subcommands and options and the environment variables
stagegate reads, as the contract lists them. They are written out below rather than imported
from the CLI, so the deployment files are checked against the agreed interface itself.
"""

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION: str = PYPROJECT["project"]["version"]
# One image for every role, tagged with the package's version.
IMAGE = f"stagegate:{VERSION}"

# The CLI contract: subcommand -> the options it takes. Flags take no value.
CLI_OPTIONS: dict[str, set[str]] = {
    "serve": {"--host", "--port"},
    "worker": {"--node", "--root", "--capacity", "--concurrency", "--metrics-host", "--metrics-port"},
    "stage": {
        "--node",
        "--mode",
        "--job",
        "--idempotency-key",
        "--wait",
        "--json",
        "--server",
        "--pin-ttl",
        "--owner-pod",
        "--owner-job",
        "--owner-uid",
        "--owner-from-env",
    },
    "db upgrade": {"--runtime-role"},
}
# Deployments always name the runtime role: without it the API and workers would have no grants.
CLI_REQUIRED: dict[str, set[str]] = {
    "serve": set(),
    "worker": {"--node", "--root"},
    "stage": {"--node"},
    "db upgrade": {"--runtime-role"},
}
CLI_POSITIONALS = {"serve": 0, "worker": 0, "stage": 1, "db upgrade": 0}  # stage SOURCE
# Subcommands that are groups: their first argument names the command.
CLI_GROUPS = {"db"}
CLI_FLAGS = {"--wait", "--json", "--owner-from-env"}

# Environment variables stagegate reads, as the contract names them.
STAGEGATE_ENV = {
    "STAGEGATE_DATABASE_URL",
    "STAGEGATE_BROKER_URL",
    "STAGEGATE_URL",
    "STAGEGATE_TOKEN",
    "STAGEGATE_POLICY",
    "STAGEGATE_LEASE_SECONDS",
    "STAGEGATE_RECONCILE_SECONDS",
    "STAGEGATE_DECISION_WAIT",
    "STAGEGATE_HOME",
    "STAGEGATE_DB_RUNTIME_ROLE",
    # Peer fan-out. STAGEGATE_PEER_SECRET (the credential as a value) is left out on purpose:
    # deployments give it as a file, never in a manifest's environment.
    "STAGEGATE_FANOUT_READERS",
    "STAGEGATE_FANOUT_PER_HOLDER",
    "STAGEGATE_PEER_LISTEN",
    "STAGEGATE_PEER_URL",
    "STAGEGATE_PEER_SECRET_FILE",
    "STAGEGATE_PEER_BANDWIDTH_LIMIT",
}
# The AWS_* settings boto3's standard chain reads, for the workers' S3 access.
AWS_ENV = {
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
}
AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}

# What the service's settings look like (contract: "postgresql+psycopg://..." in the service).
DATABASE_URL = re.compile(r"^postgresql\+psycopg://")
BROKER_URL = re.compile(r"^rediss?://")


class Invocation:
    """One `stagegate` command line, split by the contract's options."""

    def __init__(self, argv: list[str]) -> None:
        if argv and argv[0] == "stagegate":
            argv = argv[1:]
        assert argv, "no stagegate subcommand"
        words = 2 if argv[0] in CLI_GROUPS else 1
        self.subcommand = " ".join(argv[:words])
        assert self.subcommand in CLI_OPTIONS, f"{self.subcommand!r} is not a stagegate subcommand we deploy"
        self.options: dict[str, list[str]] = {}
        self.flags: set[str] = set()
        self.positionals: list[str] = []
        rest = iter(argv[words:])
        for token in rest:
            if not token.startswith("--"):
                self.positionals.append(token)
                continue
            assert token in CLI_OPTIONS[self.subcommand], f"`stagegate {self.subcommand}` has no {token}"
            if token in CLI_FLAGS:
                self.flags.add(token)
                continue
            value = next(rest, None)
            assert value is not None and not value.startswith("--"), f"{token} needs a value"
            self.options.setdefault(token, []).append(value)
        missing = CLI_REQUIRED[self.subcommand] - self.options.keys()
        assert not missing, f"`stagegate {self.subcommand}` needs {sorted(missing)}"
        assert len(self.positionals) == CLI_POSITIONALS[self.subcommand], (
            f"`stagegate {self.subcommand}` takes {CLI_POSITIONALS[self.subcommand]} argument(s), "
            f"got {self.positionals}"
        )

    def one(self, option: str) -> str:
        values = self.options.get(option, [])
        assert len(values) == 1, f"expected one {option}, got {values}"
        return values[0]


_SHELL_OPERATORS = {">", ">>", "<", "|", "||", "&&", ";", "&"}


def stagegate_argv(command: list[str] | None, args: list[str] | None, image: str) -> list[str] | None:
    """The stagegate command line a container runs, or None when it runs something else.

    The image's entrypoint is `stagegate`, so args alone are its arguments; `sh -c SCRIPT` is
    read up to the first redirection or operator after `stagegate`.
    """
    command, args = list(command or []), list(args or [])
    if not command:
        return ["stagegate", *args] if image == IMAGE else None
    if command[0] in ("/bin/sh", "sh", "/bin/bash", "bash") and command[1:2] == ["-c"]:
        script = (command[2:] + args)[0]
        words = shlex.split(script)
        if "stagegate" not in words:
            return None
        words = words[words.index("stagegate") :]
        end = next((i for i, word in enumerate(words) if word in _SHELL_OPERATORS), len(words))
        return words[:end]
    if Path(command[0]).name == "stagegate":
        return ["stagegate", *command[1:], *args]
    return None


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def k8s_documents(path: Path) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in docs), path
    return docs


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object (not the kustomization) with the file it came from."""
    return [
        (path, doc)
        for path in k8s_files()
        for doc in k8s_documents(path)
        if doc.get("kind") != "Kustomization"
    ]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in k8s_objects() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "Pod":
        spec: dict[str, Any] = obj["spec"]
        return spec
    if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet"):
        template_spec: dict[str, Any] = obj["spec"]["template"]["spec"]
        return template_spec
    return None


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, obj in k8s_objects():
        spec = pod_spec(obj)
        if spec is not None:
            yield f"{path.name}:{obj['kind']}/{obj['metadata']['name']}", spec


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions
