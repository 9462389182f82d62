"""Service answers as the contract (notes: HTTP API) spells them, for the client's unit tests."""

from typing import Any

T0 = "2026-11-26T10:00:00+00:00"


def node_part(node: str = "gpu-01", state: str = "transferring", **over: Any) -> dict[str, Any]:
    part: dict[str, Any] = {
        "node": node,
        "state": state,
        "path": None,
        "files_done": 0,
        "files_total": 10,
        "bytes_done": 0,
        "bytes_total": 1000,
        "cache_hit": False,
    }
    return {**part, **over}


def staging_json(state: str = "transferring", **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "st-1",
        "state": state,
        "source": "s3://datasets/imagenet",
        "mode": "replicate",
        "job": "train-42",
        "user": "alice",
        "project": "vision",
        "created_at": T0,
        "updated_at": T0,
        "digest": None,
        "progress": {
            "files_done": 5,
            "files_total": 20,
            "bytes_done": 500,
            "bytes_total": 2000,
            "rate_bytes_per_s": 100.0,
            "eta_seconds": 15.0,
        },
        "nodes": [node_part("gpu-01"), node_part("gpu-02", "pending")],
        "errors": [],
        "reasons": [],
        "pin": None,
    }
    return {**data, **over}


def node_json(name: str = "gpu-01", **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "root": "/nvme/stagegate",
        "capacity": 500 * 10**9,
        "used": 120 * 10**9,
        "pinned": 20 * 10**9,
        "free": 380 * 10**9,
        "last_heartbeat": T0,
        "alive": True,
        "datasets": [
            {
                "digest": "ab" * 32,
                "path": "/nvme/stagegate/datasets/abab",
                "bytes": 120 * 10**9,
                "files": 1000,
                "state": "ready",
                "pins": 1,
                "last_used": T0,
            }
        ],
    }
    return {**data, **over}
