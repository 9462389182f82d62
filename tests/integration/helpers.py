"""Helpers shared by the integration tests: dataset builders and destination inspection."""

import json
import os
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import blake3

from stagegate.transfer import TransferConfig
from stagegate.transfer.layout import state_dir_of

MiB = 1 << 20
# The console script of the venv running the tests: the CLI exactly as a user runs it.
STAGEGATE = str(Path(sys.executable).with_name("stagegate"))


def small_config(**overrides: Any) -> TransferConfig:
    """Small parts so multipart paths run on a few MiB of data."""
    fields: dict[str, Any] = {
        "concurrency": 8,
        "part_size": 1 * MiB,
        "multipart_threshold": 2 * MiB,
    }
    fields.update(overrides)
    return TransferConfig(**fields)


def blake3_hex(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def payload(seed: str, size: int) -> bytes:
    """Deterministic, incompressible-ish bytes of ``size`` that differ per ``seed``."""
    out = bytearray()
    block = blake3.blake3(seed.encode()).digest(length=min(size, 1 << 16) or 1)
    while len(out) < size:
        out += block
        block = blake3.blake3(block).digest(length=len(block))
    return bytes(out[:size])


def put_objects(client: Any, bucket: str, objects: Mapping[str, bytes], workers: int = 16) -> None:
    """PUT every ``key -> body`` into ``bucket`` (in parallel)."""

    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, objects.items()))


def write_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def data_files(dest: Path) -> dict[str, bytes]:
    """Every regular file under ``dest``, key -> bytes (the state lies beside it, so
    everything inside counts). Fails on anything that is neither a regular file nor a
    directory (e.g. a symlink)."""
    found: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(dest):
        rel_dir = Path(dirpath).relative_to(dest)
        for name in [*filenames, *dirnames]:
            path = Path(dirpath) / name
            assert not path.is_symlink(), f"unexpected symlink in destination: {path}"
        for name in filenames:
            path = Path(dirpath) / name
            found[(rel_dir / name).as_posix()] = path.read_bytes()
    return found


def read_manifest(dest: Path) -> dict[str, dict[str, Any]]:
    lines = (state_dir_of(dest) / "manifest.jsonl").read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    keys = [r["key"] for r in records]
    assert keys == sorted(keys), "manifest is not in key order"
    assert len(set(keys)) == len(keys), "manifest lists a key twice"
    return {r["key"]: r for r in records}


def temp_files(dest: Path) -> list[str]:
    tmp = state_dir_of(dest) / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def is_ready(dest: Path) -> bool:
    return (state_dir_of(dest) / "READY").exists()


def assert_staged(dest: Path, expected: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """``dest`` is ready and holds exactly ``expected``, and the manifest's BLAKE3 values
    are those of the bytes. Returns the manifest."""
    assert is_ready(dest), "READY marker missing"
    got = data_files(dest)
    assert sorted(got) == sorted(expected)
    for key, data in expected.items():
        assert got[key] == data, f"{key}: bytes differ"
    manifest = read_manifest(dest)
    assert sorted(manifest) == sorted(expected)
    for key, data in expected.items():
        record = manifest[key]
        assert record["size"] == len(data), key
        assert record["blake3"] == blake3_hex(data), f"{key}: manifest blake3 is wrong"
        assert record["verification"] in ("source", "local")
    assert temp_files(dest) == []
    return manifest


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """Everything under ``root`` (not following symlinks): path -> (kind, size, content)."""
    seen: dict[str, tuple[str, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if path.is_symlink():
                seen[rel] = ("link", 0, os.readlink(path))
            elif path.is_dir():
                seen[rel] = ("dir", 0, b"")
            else:
                seen[rel] = ("file", st.st_size, path.read_bytes())
    return seen


def dataset_and_state(dest: Path) -> dict[str, dict[str, tuple[str, int, bytes | str]]]:
    """:func:`snapshot` of the dataset and of its state directory (the lock aside: it holds
    the pid of the last staging): equal before and after means nothing changed, READY included."""
    state = {k: v for k, v in snapshot(state_dir_of(dest)).items() if k != "lock"}
    return {"data": snapshot(dest), "state": state}


def moto_key(bucket: str, key: str) -> Any:
    """The stored object inside the in-process moto backend."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backends = s3_backends[DEFAULT_ACCOUNT_ID]
    for partition in ("aws", "global"):
        if partition in backends and bucket in backends[partition].buckets:
            return backends[partition].buckets[bucket].keys[key]
    raise KeyError(f"bucket {bucket!r} not found in the moto backend")
