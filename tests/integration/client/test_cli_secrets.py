"""A credential in a URL given to the CLI is refused (exit 2) before anything is recorded: the
error does not repeat it and the embedded SQLite ledger never holds it, whatever the secret
contains."""

import os
import subprocess
from pathlib import Path

import pytest

from integration.helpers import STAGEGATE

pytestmark = pytest.mark.integration

# Shaped like a real AWS secret key: "/" and "+" inside, where urlsplit's host ends.
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY/EXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
PIECES = (SECRET, KEY_ID, *SECRET.split("/"), *SECRET.split("+"))
URLS = {
    "slash in the secret": f"s3://{KEY_ID}:{SECRET}@bucket/data/",
    "space, ? and # in the secret": f"s3://{KEY_ID}:{SECRET} ?x#y@bucket/data/",
    "token as user-info": f"https://{SECRET}@data.example.org/ds/",
    "presigned": f"https://h.example/ds?X-Amz-Credential={KEY_ID}&X-Amz-Signature={SECRET}",
}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STAGEGATE, *args], capture_output=True, text=True, env=env, timeout=60)


def assert_refused_and_forgotten(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "credentials" in proc.stderr
    for piece in PIECES:
        assert piece not in proc.stderr and piece not in proc.stdout
    home = Path(os.environ["STAGEGATE_HOME"])
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for piece in PIECES:
                assert piece.encode() not in data, f"{piece!r} in {path}"


@pytest.mark.parametrize("url", list(URLS.values()), ids=list(URLS))
def test_stage_refuses_a_source_with_credentials(tmp_path: Path, url: str) -> None:
    assert_refused_and_forgotten(run("stage", url, "--to", str(tmp_path / "out"), "--no-progress"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("url", list(URLS.values()), ids=list(URLS))
def test_policy_check_refuses_a_source_with_credentials(url: str) -> None:
    assert_refused_and_forgotten(run("policy", "check", url))


@pytest.mark.parametrize("url", list(URLS.values()), ids=list(URLS))
def test_egress_refuses_a_destination_with_credentials(tmp_path: Path, url: str) -> None:
    run_dir = tmp_path / "run" / "checkpoint-1"
    run_dir.mkdir(parents=True)
    (run_dir / "model.bin").write_bytes(b"weights")
    assert_refused_and_forgotten(run("egress", str(tmp_path / "run"), "--to", url, "--latest", "1"))


def test_service_mode_refuses_before_sending(tmp_path: Path) -> None:
    # Nothing listens on the server's port: a refusal that needed the server would say so.
    env = {**os.environ, "STAGEGATE_TOKEN": "sg_" + "x" * 43, "STAGEGATE_URL": "http://127.0.0.1:9"}
    proc = run("stage", URLS["slash in the secret"], "--node", "gpu-01", env=env)
    assert_refused_and_forgotten(proc)
    assert "cannot reach" not in proc.stderr


def test_a_server_url_with_a_slashed_password_is_refused_unechoed() -> None:
    env = {**os.environ, "STAGEGATE_TOKEN": "sg_" + "x" * 43}
    proc = run("status", "some-id", "--server", f"http://admin:{SECRET}@127.0.0.1:9/", env=env)
    assert_refused_and_forgotten(proc)
