"""A moto S3 server on loopback, for the S3 scenarios, and the upload of datasets into it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig

from bench.datasets import LABEL, LABEL_FILE, Dataset
from bench.moto_seeded import Seed
from bench.peers import VENV_BIN

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "bench"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Bigger than this goes up as a multipart upload (boto3's own default threshold).
MULTIPART = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)
UPLOAD_ATTEMPTS = 3


class S3Server:
    """Starts `moto_server` on a free loopback port; stops it on exit.

    With ``seeds``, the server is `bench.moto_seeded` instead: moto with those datasets made in
    its own process before it serves, and a listing that does not walk every key per page
    (what a run of 100,000 objects needs; see that module).
    """

    def __init__(self, log_path: Path, seeds: Sequence[Seed] = (), ready_s: float = 30.0) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._seeds = tuple(seeds)
        self._ready_s = ready_s
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> S3Server:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        # moto (werkzeug) logs every request; keep it out of our output but on record.
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[1]
            )
        try:
            self._wait_ready()
            if not self._seeds:  # a seeded server made its bucket before it served
                self._client().create_bucket(Bucket=BUCKET)
        except BaseException:
            self._stop()  # __exit__ is not called when __enter__ fails
            raise
        return self

    def _command(self) -> list[str]:
        if not self._seeds:
            return [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        seeds = [arg for seed in self._seeds for arg in ("--seed", str(seed))]
        return [
            sys.executable,
            "-m",
            "bench.moto_seeded",
            "--port",
            str(self.port),
            "--bucket",
            BUCKET,
            *seeds,
        ]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    @property
    def env(self) -> dict[str, str]:
        """What every tool needs in its environment to reach this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

    def cpu_seconds(self) -> float:
        """User+system CPU the server process has used so far (from /proc, no psutil here)."""
        assert self._process is not None
        with open(f"/proc/{self._process.pid}/stat") as stat:
            # Fields after the parenthesised command name; utime and stime are 14th and 15th.
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def upload(self, dataset: Dataset) -> str:
        """Upload the dataset under a prefix named after it; return the prefix's s3:// URL.

        boto3's defaults stay on, so every object carries a CRC32 checksum, as on real S3 today.
        """
        client = self._client()
        prefix = dataset.name

        def put(item: tuple[str, int]) -> None:
            relative, size = item
            key = f"{prefix}/{relative}"
            if size > MULTIPART.multipart_threshold:
                # moto on a loaded machine now and then answers CompleteMultipartUpload with a
                # 500 (seen in a full-size run): upload that object again, whole.
                for attempt in range(UPLOAD_ATTEMPTS):
                    try:
                        client.upload_file(str(dataset.path / relative), BUCKET, key, Config=MULTIPART)
                        break
                    except S3UploadFailedError:
                        if attempt == UPLOAD_ATTEMPTS - 1:
                            raise
            else:
                client.put_object(Bucket=BUCKET, Key=key, Body=(dataset.path / relative).read_bytes())

        # Many small objects: a thread pool keeps the upload from being latency-bound.
        with ThreadPoolExecutor(max_workers=16) as pool:
            for _ in pool.map(put, dataset.files()):
                pass  # consuming the results re-raises the first failed upload
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{LABEL_FILE}", Body=LABEL)
        return f"s3://{BUCKET}/{prefix}"

    def _client(self) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            config=BotoConfig(retries={"max_attempts": 8, "mode": "standard"}),
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._ready_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"moto_server exited early; see {self._log_path}")
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is serving
            except (urllib.error.URLError, OSError):  # refused, or too slow to answer on a loaded machine
                time.sleep(0.1)
        raise RuntimeError(f"moto_server did not answer on {self.url} within {self._ready_s:.0f} s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
