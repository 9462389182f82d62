"""The Dockerfile and .dockerignore, read as text (no Docker engine here)."""

import fnmatch
import json

from unit.deploy.helpers import DOCKERIGNORE, PYPROJECT, ROOT, dockerfile_instructions


def _arguments(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile_instructions() if kw == keyword]


def _copied_sources() -> list[str]:
    """Sources of COPY instructions from the build context (not --from another stage)."""
    sources = []
    for rest in _arguments("COPY"):
        words = rest.split()
        if any(word.startswith("--from=") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        sources += [word.rstrip("/") for word in words[:-1]]
    return sources


def test_every_stage_is_python_311_slim() -> None:
    bases = [rest.split()[0] for rest in _arguments("FROM")]
    assert bases
    assert set(bases) == {"python:3.11-slim"}


def test_installs_the_package_with_the_postgres_extra() -> None:
    assert any("pip install '.[postgres]'" in rest for rest in _arguments("RUN"))


def test_runs_as_a_numeric_non_root_user() -> None:
    users = _arguments("USER")
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit(), users[-1]
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # The user exists in the image, with the same id.
    assert any(f"--uid {uid}" in rest for rest in _arguments("RUN"))


def test_entrypoint_is_the_stagegate_command() -> None:
    entrypoints = _arguments("ENTRYPOINT")
    assert entrypoints
    # Exec form, so signals reach stagegate itself rather than a shell.
    assert json.loads(entrypoints[-1]) == ["stagegate"]


def test_copies_exactly_the_packages_pyproject_installs() -> None:
    # pyproject installs the namespace stagegate/, whose layers are links to top-level folders:
    # the build context needs the links and the folders they point to.
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["stagegate", "stagegate.*"]
    layers = {link.name for link in (ROOT / "stagegate").iterdir() if link.is_symlink()}
    copied = set(_copied_sources())
    assert copied == {"stagegate", *layers, "pyproject.toml", PYPROJECT["project"]["readme"]}
    for source in copied:
        assert (ROOT / source).exists(), source


def _ignored(relative: str, patterns: list[str]) -> bool:
    # Docker's rules, as far as this file uses them: a pattern matches the path or any parent
    # directory of it; a leading "**/" matches at any depth.
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(
                fnmatch.fnmatchcase("/".join(parts[i : j + 1]), tail)
                for i in range(len(parts))
                for j in range(i, len(parts))
            ):
                return True
        elif any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            return True
    return False


def _dockerignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    # Negations would need ordering rules this check does not model.
    assert not any(pattern.startswith("!") for pattern in patterns)
    return patterns


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = _dockerignore_patterns()
    for local in (".git", ".venv", "tests", "client/__pycache__/cli.cpython-311.pyc", "build", "dist"):
        assert _ignored(local, patterns), local


def test_dockerignore_keeps_every_file_the_build_needs() -> None:
    """Nothing copied is ignored: e.g. `*.yaml` would drop the shipped policy, `*.mako` a migration."""
    patterns = _dockerignore_patterns()
    needed = []
    for source in _copied_sources():
        path = ROOT / source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        needed += [f.relative_to(ROOT).as_posix() for f in files if "__pycache__" not in f.parts]
    assert any(name.endswith(".yaml") for name in needed)  # the shipped policy is among them
    ignored = [name for name in needed if _ignored(name, patterns)]
    assert not ignored
