"""The S3 writer through the copy engine, against the loopback S3 server: every file in
flight shares a fixed number of part buffers, and what arrives is exactly the files."""

from pathlib import Path
from typing import Any

import pytest

from integration.helpers import MiB, payload, write_tree
from stagegate.transfer.endpoints.run_dir import RunDir, RunDirSource
from stagegate.transfer.endpoints.s3 import S3Writer
from stagegate.transfer.engine import CopyEngine, TransferConfig
from stagegate.transfer.progress import ProgressTracker
from stagegate.transfer.sources.s3 import make_client

pytestmark = pytest.mark.integration


class Named:
    def __init__(self, name: str) -> None:
        self.name = name
        self.is_dir = True


def test_files_in_flight_share_at_most_the_writers_part_buffers(
    tmp_path: Path, s3_client: Any, bucket: str
) -> None:
    files = {f"ckpt/shard-{i}.bin": payload(f"p{i}", 12 * MiB + i) for i in range(4)}
    files["ckpt/small.json"] = b"{}"  # one part or less: a single PutObject
    run = write_tree(tmp_path / "run", files)
    config = TransferConfig(concurrency=4, part_size=5 * MiB, multipart_threshold=5 * MiB)

    with RunDir(run) as run_dir:
        source = RunDirSource(run_dir, [Named("ckpt")])
        writer = S3Writer(f"s3://{bucket}/out", buffers=2, client=make_client(16))
        tracker = ProgressTracker(len(files), sum(map(len, files.values())), None)
        try:
            with CopyEngine(source, writer, config, tracker) as engine:
                records = engine.collect([engine.submit(o, None) for o in source.list()])
        finally:
            writer.close()

    # Four threads each wanted parts of their own 12 MiB file; two buffers served them all.
    assert writer.buffers.peak == 2
    assert writer.buffers.held == 0
    got = {
        key: s3_client.get_object(Bucket=bucket, Key=f"out/{key}")["Body"].read() for key in files
    }
    assert got == files
    assert all(str(r.destination_checksum).startswith("crc64nvme:") for r in records)
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
