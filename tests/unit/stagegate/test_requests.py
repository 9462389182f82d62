"""The kernel's request types: what a request may hold is decided once, on the type."""

from typing import Any

import pytest

from stagegate.errors import InvalidInputError
from stagegate.requests import EgressRequest, StagingRequest


def test_an_egress_request_round_trips_through_its_stored_form() -> None:
    request = EgressRequest(
        "/runs/r1", "s3://b/m", latest=1, best="val_acc", mode="max", names=["c-1"], job_ref="j", node="n"
    )
    assert request.names == ("c-1",)  # a list given is kept as a tuple: the request stays hashable
    assert EgressRequest.from_params(request.to_params()) == request
    assert EgressRequest.from_params({**request.to_params(), "added_later": 1}) == request


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"run_dir": "runs/r1"}, "absolute path"),
        ({"run_dir": ""}, "absolute path"),
        ({"destination": ""}, "destination must not be empty"),
        ({"destination": "s3://AKIAIOSFODNN7EXAMPLE:hunter2pw@b/m"}, "credentials"),
        ({"mode": "median", "best": "loss"}, "mode must be min or max"),
        ({"mode": "min"}, "mode goes with best"),
        ({"best": ""}, "best must name a metric"),
        ({"latest": 0}, "latest must be a positive count"),
        ({"names": "checkpoint-1"}, "list of names"),
        ({"names": ["ok", ""]}, "non-empty names"),
    ],
)
def test_an_egress_request_refuses_what_cannot_mean_one_thing(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        EgressRequest(**{"run_dir": "/runs/r1", "destination": "s3://b/m", **fields})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source": ""}, "source must not be empty"),
        ({"source": "s3://AKIAIOSFODNN7EXAMPLE:hunter2pw@b/x"}, "credentials"),
        ({"mode": "mirror"}, "mode must be replicate or shard"),
        ({"nodes": ()}, "at least one node"),
        ({"nodes": ("a", "a")}, "each node once"),
        ({"nodes": ("a", "")}, "non-empty names"),
        ({"destination": "/nvme/ds"}, "not both"),
        ({"replace": True}, "replace and sync apply to a destination directory"),
        ({"sync": True}, "replace and sync apply to a destination directory"),
    ],
)
def test_a_staging_request_refuses_what_cannot_mean_one_thing(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        StagingRequest(**{"source": "s3://b/x", "nodes": ("a",), **fields})


def test_a_staging_request_goes_onto_nodes_or_into_a_directory() -> None:
    assert StagingRequest("s3://b/x", nodes=["a", "b"]).nodes == ("a", "b")
    assert StagingRequest("s3://b/x", "/nvme/ds").destination == "/nvme/ds"


def test_filters_travel_with_both_requests_and_round_trip() -> None:
    staging = StagingRequest("s3://b/d", nodes=["n"], include=["val/**", "*.json"])
    assert (staging.include, staging.exclude) == (("val/**", "*.json"), ())
    assert StagingRequest.from_params(staging.to_params()) == staging
    assert staging.key_filter("val/a.bin") and not staging.key_filter("train/a.bin")
    excluding = StagingRequest("s3://b/d", nodes=["n"], exclude=["*.tmp", "/train/"])
    assert StagingRequest.from_params(excluding.to_params()) == excluding
    assert excluding.key_filter("val/a.bin") and not excluding.key_filter("val/a.tmp")
    egress = EgressRequest("/runs/r1", "s3://b/m", latest=1, exclude=["optimizer.pt"])
    assert EgressRequest.from_params(egress.to_params()) == egress
    assert not egress.key_filter("checkpoint-5/optimizer.pt")
    assert egress.selection_details()["exclude"] == ["optimizer.pt"]


def test_an_exclude_beside_an_include_is_refused_in_both_requests() -> None:
    with pytest.raises(InvalidInputError, match="would change nothing beside --include"):
        StagingRequest("s3://b/d", "/nvme/d", include=["val/**"], exclude=["*.tmp"])
    with pytest.raises(InvalidInputError, match="would change nothing beside --include"):
        EgressRequest("/runs/r1", "s3://b/m", latest=1, include=["*.pt"], exclude=["optimizer.pt"])


@pytest.mark.parametrize("request_type", ["staging", "egress"])
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"include": ["../**"]}, r"'\.\./\*\*'.*above the source"),
        ({"exclude": ["a{b"]}, r"'a\{b'.*mismatched"),
        ({"include": "*.jpg"}, "list of patterns"),
        ({"include": ["dir/"]}, "selects no file"),
    ],
)
def test_a_bad_filter_is_refused_on_construction_naming_it(
    request_type: str, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        if request_type == "staging":
            StagingRequest("s3://b/d", nodes=["n"], **fields)
        else:
            EgressRequest("/runs/r1", "s3://b/m", latest=1, **fields)
def test_replace_and_sync_go_with_a_destination() -> None:
    request = StagingRequest("s3://b/x", "/nvme/ds", replace=True, sync=True)
    assert (request.replace, request.sync) == (True, True)
    assert not StagingRequest("s3://b/x", "/nvme/ds").replace
