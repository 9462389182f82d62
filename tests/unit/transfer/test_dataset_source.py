"""source_identity: every spelling of one source is one identity, two sources are two."""

from pathlib import Path

import pytest

from stagegate.transfer.dataset_source import source_identity


def test_spellings_of_a_local_directory_are_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spellings = ["data", "./data/", f"{tmp_path}/data", f"{tmp_path}//data/", f"file://{tmp_path}/data"]
    assert {source_identity(s) for s in spellings} == {f"{tmp_path}/data"}


def test_a_percent_encoded_file_url_is_its_path() -> None:
    assert source_identity("file:///mnt/my%20data/") == "/mnt/my data"


def test_an_s3_folder_with_and_without_its_slash_is_one() -> None:
    assert (
        source_identity("s3://datasets/mini/")
        == source_identity("s3://datasets/mini")
        == "s3://datasets/mini"
    )
    assert source_identity("s3://datasets/") == "s3://datasets"


def test_different_sources_stay_different() -> None:
    assert source_identity("s3://datasets/mini") != source_identity("s3://datasets/mini/val")
    assert source_identity("s3://a/x") != source_identity("gcs://a/x")
    assert source_identity("memory://") == "memory://"
