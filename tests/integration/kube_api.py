"""A small Kubernetes API on loopback: the two REST paths the owner check reads, for real HTTP.

No cluster exists here, so this serves ``GET /api/v1/namespaces/NS/pods/NAME`` and
``GET /apis/batch/v1/namespaces/NS/jobs/NAME`` from a dict of objects shaped like the real
API's (``kind``, ``apiVersion``, ``metadata`` with ``uid``, ``status``), answers a missing one
with the API's 404 ``Status`` object, refuses a wrong or missing bearer token with 401 as the
API does, and records every path asked for. ``outage = 503`` makes every answer that status.
"""

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATHS = {
    "Pod": re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)"),
    "Job": re.compile(r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)"),
}
_RESOURCE = {"Pod": "pods", "Job": "jobs"}


def status(code: int, reason: str, message: str, details: dict[str, str] | None = None) -> dict[str, Any]:
    """The API's Status object, as it answers an error."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


@dataclass
class FakeKubeApi:
    token: str
    url: str = ""
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    outage: int | None = None

    def add_pod(self, namespace: str, name: str, phase: str = "Running", uid: str | None = None) -> str:
        """A pod as the API shows one; returns its uid."""
        uid = uid or str(uuid.uuid4())
        self.objects[("Pod", namespace, name)] = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": "1"},
            "spec": {"containers": [{"name": "train", "image": "trainer"}]},
            "status": {"phase": phase},
        }
        return uid

    def add_job(self, namespace: str, name: str, condition: str | None = None) -> str:
        uid = str(uuid.uuid4())
        conditions = [{"type": condition, "status": "True"}] if condition else []
        self.objects[("Job", namespace, name)] = {
            "kind": "Job",
            "apiVersion": "batch/v1",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "spec": {"completions": 1},
            "status": {"active": 0 if condition else 1, "conditions": conditions},
        }
        return uid

    def delete(self, kind: str, namespace: str, name: str) -> None:
        del self.objects[(kind, namespace, name)]

    def answer(self, method: str, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, path))
        if self.outage is not None:
            return self.outage, status(self.outage, "ServiceUnavailable", "the API is down")
        if authorization != f"Bearer {self.token}":
            return 401, status(401, "Unauthorized", "Unauthorized")
        for kind, pattern in _PATHS.items():
            match = pattern.fullmatch(path)
            if match and method == "GET":
                namespace, name = match.groups()
                found = self.objects.get((kind, namespace, name))
                if found is None:
                    resource = _RESOURCE[kind]
                    message = f'{resource} "{name}" not found'
                    return 404, status(404, "NotFound", message, {"name": name, "kind": resource})
                return 200, found
        return 404, status(404, "NotFound", "the server could not find the requested resource")


def _handler(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            code, body = api.answer("GET", self.path, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def kube_api(token: str = "sa-token-for-tests") -> Iterator[FakeKubeApi]:
    """A :class:`FakeKubeApi` serving on 127.0.0.1 (``.url``) for the duration."""
    api = FakeKubeApi(token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
