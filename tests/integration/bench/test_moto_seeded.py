"""The seeded bench server (``python -m bench.moto_seeded``, through ``bench.s3server``) serves
its seeded objects as moto serves ones a boto3 client PUT: same headers, MD5 ETag, the CRC32
checksum a GET with checksum mode returns, every key in a paginated listing."""

import binascii
import hashlib
from base64 import b64encode
from pathlib import Path

import boto3

from bench.datasets import LABEL_FILE
from bench.moto_seeded import Seed
from bench.s3server import BUCKET, CREDENTIALS, S3Server

# What differs between any two objects, or between two requests; and x-amz-content-sha256, the
# PUT request's signing header that moto keeps among an uploaded object's metadata (S3 does not).
_PER_OBJECT = {
    "etag",
    "last-modified",
    "date",
    "x-amz-checksum-crc32",
    "x-amz-request-id",
    "x-amz-id-2",
    "x-amz-content-sha256",
}


def test_seeded_objects_are_served_as_uploaded_ones(tmp_path: Path) -> None:
    with S3Server(tmp_path / "moto.log", [Seed("seeded", 5, 300)]) as server:
        s3 = boto3.client(
            "s3",
            endpoint_url=server.url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )
        s3.put_object(Bucket=BUCKET, Key="uploaded/f/0000000.bin", Body=b"u" * 300)

        def fetched(key: str) -> tuple[dict[str, str], bytes]:
            got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
            return got["ResponseMetadata"]["HTTPHeaders"], got["Body"].read()

        uploaded, _ = fetched("uploaded/f/0000000.bin")
        seeded, body = fetched("seeded/f/0000003.bin")
        assert len(body) == 300
        assert seeded.keys() - _PER_OBJECT == uploaded.keys() - _PER_OBJECT
        assert seeded["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
        assert seeded["x-amz-checksum-crc32"] == b64encode(binascii.crc32(body).to_bytes(4, "big")).decode()

        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="seeded/", MaxKeys=2)
        listed = [item["Key"] for page in pages for item in page.get("Contents", [])]
        assert listed == [f"seeded/{LABEL_FILE}", *(f"seeded/f/{i:07d}.bin" for i in range(5))]
