"""Small files copied by child processes (transfer.copy_processes) against a real S3 server
on loopback: the GETs come from the children, not the staging's process; a byte flipped in
flight in a child is caught and the object read again there, and one flipped every time
fails the staging with the checksum error; the embedded staging and the service's copy step
both hand small files to children. (A kill -9 of the staging's process with its children:
tests/integration/transfer/test_kill_and_resume.py.)"""

import os
import threading
from pathlib import Path

import pytest

from integration.helpers import assert_staged, data_files, payload, put_objects, small_config, temp_files
from integration.transfer import test_s3_data_path
from stagegate.transfer import copy_batch, open_source, plan_dataset, stage
from stagegate.transfer.errors import ChecksumMismatchError
from stagegate.transfer.sources import source_recipe

pytestmark = pytest.mark.integration
through = test_s3_data_path.through  # the flipping proxy's fixture

FILES = {f"d{i % 3}/{i:03d}.bin": payload(f"f{i}", 3000 + i) for i in range(90)}


def owner_of_client_port(port: int, peer_port: int) -> int | None:
    """The process holding the loopback TCP socket whose local port is ``port`` and whose peer
    is ``peer_port`` (the local port alone also matched another process's connection elsewhere
    that happened to use the same number: RabbitMQ's, seen in CI)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
            if local == port and remote == peer_port:
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:
            continue
        if any(link == f"socket:[{inode}]" for link in links for inode in inodes):
            return int(proc.name)
    return None


class GetOwners:
    """Which process sent each GET through the proxy."""

    def __init__(self) -> None:
        self.pids: set[int | None] = set()
        self._lock = threading.Lock()

    def __call__(self, path: str, port: int, proxy_port: int) -> None:
        pid = owner_of_client_port(port, proxy_port)
        with self._lock:
            self.pids.add(pid)

    def children(self) -> set[int | None]:
        return self.pids - {os.getpid()}


def test_a_byte_flipped_in_a_copy_process_is_caught_and_the_object_read_again(
    s3_client, bucket, tmp_path, through
):
    put_objects(
        s3_client, bucket, {f"ds/{k}": v for k, v in {**FILES, "victim.bin": payload("v", 5000)}.items()}
    )
    proxy = through("victim.bin")
    owners = proxy.on_get = GetOwners()
    url = f"s3://{bucket}/ds"

    result = stage(
        open_source(url), tmp_path / "dest", small_config(processes=2), source_recipe=source_recipe(url)
    )

    assert proxy.flipped == 1
    assert result.files == len(FILES) + 1
    assert_staged(tmp_path / "dest", {**FILES, "victim.bin": payload("v", 5000)})
    assert len([p for p, _ in proxy.gets if p.split("?")[0].endswith("victim.bin")]) == 2  # read again
    # Every GET of an object came from a copy process; none from this one.
    assert os.getpid() not in owners.pids and len(owners.children() - {None}) == 2, owners.pids


def test_a_byte_flipped_on_every_read_in_a_copy_process_fails_after_the_last_attempt(
    s3_client, bucket, tmp_path, through
):
    put_objects(
        s3_client, bucket, {f"ds/{k}": v for k, v in {**FILES, "victim.bin": payload("v", 5000)}.items()}
    )
    proxy = through("victim.bin", flips=99)
    url = f"s3://{bucket}/ds"

    with pytest.raises(ChecksumMismatchError, match=r"victim\.bin"):
        stage(
            open_source(url),
            tmp_path / "dest",
            small_config(processes=2, max_attempts=3),
            source_recipe=source_recipe(url),
        )

    assert proxy.flipped == 3
    assert "victim.bin" not in data_files(tmp_path / "dest")
    assert temp_files(tmp_path / "dest") == []


def test_the_service_copy_step_hands_small_files_to_copy_processes(s3_client, bucket, tmp_path, through):
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in FILES.items()})
    proxy = through("none-flipped")
    owners = proxy.on_get = GetOwners()
    url = f"s3://{bucket}/ds"
    plan = plan_dataset(open_source(url), tmp_path / "plan.jsonl")

    result = copy_batch(
        open_source(url), tmp_path / "service", 0, list(plan.entries()), small_config(processes=2),
        source_recipe=source_recipe(url),
    )  # fmt: skip

    assert result.files_copied == len(FILES)
    assert data_files(tmp_path / "service") == FILES
    assert os.getpid() not in owners.pids and len(owners.children() - {None}) == 2, owners.pids


def test_without_a_recipe_every_file_is_copied_here(s3_client, bucket, tmp_path, through):
    """The check above can fail: without a recipe the same staging's GETs are all this process's."""
    put_objects(s3_client, bucket, {f"ds/{k}": v for k, v in FILES.items()})
    proxy = through("none-flipped")
    owners = proxy.on_get = GetOwners()

    stage(open_source(f"s3://{bucket}/ds"), tmp_path / "dest", small_config(processes=2))

    assert_staged(tmp_path / "dest", FILES)
    assert owners.pids - {None} == {os.getpid()}  # None: a socket closed before it was looked up
