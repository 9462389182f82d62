"""End to end: a secret planted in a staging source and an egress destination is refused
(400, or exit 2 from the CLI) and sticks nowhere: not in any ledger table, the audit export,
an API answer, the API's or the worker's log, or Redis."""

from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from integration.service.cluster import Cluster

pytestmark = pytest.mark.integration

# Shaped like a real AWS secret key: "/" and "+" inside, where urlsplit's host ends.
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY/EXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
# Every piece long enough to be telling: a leak of half the secret is a leak.
PIECES = (SECRET, KEY_ID, *(p for p in SECRET.replace("+", "/").split("/") if len(p) >= 6))


def planted(bucket: str, where: str) -> dict[str, str]:
    return {
        "user-info with a slash": f"s3://{KEY_ID}:{SECRET}@{bucket}/{where}",
        "user-info with a space and ?": f"s3://{KEY_ID}:{SECRET} ?x@{bucket}/{where}",
        "presigned": f"https://s3.example/{bucket}/{where}?X-Amz-Credential={KEY_ID}&X-Amz-Signature={SECRET}",
    }


def ledger_text(cluster: Cluster) -> str:
    """Every row of every table of the ledger, as text."""
    engine = cluster.ledger.engine
    rows: list[str] = []
    with engine.connect() as connection:
        for table in sa.inspect(engine).get_table_names():
            for row in connection.execute(sa.text(f'SELECT * FROM "{table}"')):
                rows.append(f"{table}: {tuple(row)!r}")
    assert any(r.startswith("audit_events") or "stage." in r for r in rows), "the ledger looks empty"
    return "\n".join(rows)


def redis_text(url: str) -> str:
    """Every key and value in the broker's Redis, as text."""
    client = redis.Redis.from_url(url)
    out: list[str] = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            value: Any = kind
            if kind == "string":
                value = client.get(key)
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            elif kind == "hash":
                value = client.hgetall(key)
            elif kind == "set":
                value = client.smembers(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            out.append(f"{key!r} {kind} {value!r}")
    finally:
        client.close()
    return "\n".join(out)


def assert_nowhere(text: str, where: str) -> None:
    for piece in PIECES:
        assert piece not in text, f"{piece!r} found in {where}"


def test_a_planted_secret_is_refused_and_sticks_nowhere(
    start_cluster: Any, dataset: Any, bucket: str, tmp_path: Path
) -> None:
    cluster: Cluster = start_cluster({"a": None})
    token = cluster.token("sam", "scientist", "vision")
    admin = cluster.token("root", "admin")
    answers: list[str] = []

    # Ordinary traffic first, so the logs, Redis and the ledger hold something to search.
    good = dataset("ds", {"x.bin": b"x" * 100})
    with cluster.http(token) as http:
        accepted = http.post("/v1/stagings", json={"source": good, "nodes": ["a"]})
        assert accepted.status_code == 202, accepted.text
        assert cluster.wait_terminal(token, accepted.json()["id"])["state"] == "ready", cluster.logs()

        for name, url in planted(bucket, "ds").items():
            response = http.post("/v1/stagings", json={"source": url, "nodes": ["a"], "job": "j1"})
            assert response.status_code == 400, (name, response.text)
            assert "credentials" in response.json()["detail"]
            answers.append(response.text)
        run = cluster.roots["a"] / "runs" / "sam" / "run-1"
        (run / "checkpoint-1").mkdir(parents=True)
        (run / "checkpoint-1" / "model.bin").write_bytes(b"weights")
        for name, url in planted(bucket, "models").items():
            body = {"run_dir": str(run), "node": "a", "destination": url, "latest": 1}
            response = http.post("/v1/egress", json=body)
            assert response.status_code == 400, (name, response.text)
            answers.append(response.text)

    for url in planted(bucket, "cli").values():
        proc = cluster.cli("stage", url, "--node", "a", token=token)
        assert proc.returncode == 2, proc.stderr
        answers += [proc.stdout, proc.stderr]
        proc = cluster.cli("egress", str(run), "--to", url, "--node", "a", "--latest", "1", token=token)
        assert proc.returncode == 2, proc.stderr
        answers += [proc.stdout, proc.stderr]

    with cluster.http(admin) as http:
        for path in ("/v1/stagings", "/v1/audit", f"/v1/stagings/{accepted.json()['id']}"):
            response = http.get(path)
            assert response.status_code == 200, response.text
            answers.append(response.text)
    export = cluster.cli("audit", "export", "--local")
    assert export.returncode == 0, export.stderr
    assert "stage.completed" in export.stdout

    assert_nowhere("\n".join(answers), "the API's and the CLI's answers")
    assert_nowhere(export.stdout, "audit export")
    assert_nowhere(ledger_text(cluster), "the ledger")
    logs = "\n".join(p.read_text() for p in sorted(cluster.workdir.glob("*.log")))
    assert "ready" in logs
    assert_nowhere(logs, "the API's and the worker's logs")
    assert_nowhere(redis_text(cluster.redis.url), "Redis")
