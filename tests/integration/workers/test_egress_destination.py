"""A local egress destination (embedded mode): walked from / without following a link, so
the directory written is the one the policy matched; nothing there is ever overwritten."""

import os
from pathlib import Path
from typing import Any

import pytest

from integration.helpers import write_tree
from stagegate.errors import ExistsError, InvalidInputError
from stagegate.ledger import AuditTrail, Ledger, open_ledger
from stagegate.policies import Policy
from stagegate.requests import EgressRequest
from stagegate.transfer.errors import UnsafeDestinationError
from stagegate.workers.egress import EgressOptions, run_egress
from stagegate.workers.staging import Requester

pytestmark = pytest.mark.integration

WHO = Requester(actor="alice", role="local")
CONFIG = EgressOptions(concurrency=2)


@pytest.fixture
def ledger() -> Any:
    opened = open_ledger()
    try:
        yield opened
    finally:
        opened.close()


def make_run(root: Path, label: str) -> Path:
    return write_tree(
        root / "run",
        {
            "checkpoint-100/model.bin": b"new weights",
            "checkpoint-100/config.json": b"{}",
            "checkpoint-100/.classification": f"{label}\n".encode(),
        },
    )


def vault_policy(vault: Path) -> Policy:
    """Confidential may go to ``vault``; everything else only public."""
    return Policy.parse(
        f'version: 1\nstaging: public\negress:\n  - prefix: "{vault}"\n    max_level: confidential\n'
        '  - prefix: "/"\n    max_level: public\n'.encode()
    )


def test_an_egress_never_overwrites_a_file_at_the_destination(ledger: Ledger, tmp_path: Path) -> None:
    run = make_run(tmp_path, "public")
    dest = tmp_path / "share"
    theirs = write_tree(dest, {"checkpoint-100/model.bin": b"someone else's weights"})

    with pytest.raises(ExistsError) as exists:
        run_egress(ledger, Policy.default(), WHO, EgressRequest(str(run), str(dest), latest=1), CONFIG)

    assert f"{dest}/checkpoint-100/model.bin already exists" in str(exists.value)
    assert (theirs / "checkpoint-100" / "model.bin").read_bytes() == b"someone else's weights"
    # Checked before the first byte: no other file of the checkpoint landed either.
    assert sorted(os.listdir(dest / "checkpoint-100")) == ["model.bin"]
    assert os.listdir(dest / ".stagegate" / "tmp") == []
    assert AuditTrail(ledger).query()[-1].action == "egress.failed"


def test_a_symlinked_component_cannot_carry_a_checkpoint_past_the_policy(
    ledger: Ledger, tmp_path: Path
) -> None:
    run = make_run(tmp_path, "confidential")
    vault, public = tmp_path / "vault", tmp_path / "public"
    vault.mkdir()
    public.mkdir()
    (vault / "drop").symlink_to(public)  # matches the vault's prefix as text, lands in public

    with pytest.raises(UnsafeDestinationError, match="symlink"):
        run_egress(
            ledger, vault_policy(vault), WHO, EgressRequest(str(run), f"{vault}/drop/m", latest=1), CONFIG
        )

    assert list(public.iterdir()) == []


def test_policy_prefixes_match_whole_path_components(ledger: Ledger, tmp_path: Path) -> None:
    run = make_run(tmp_path, "confidential")
    vault = tmp_path / "vault"
    request = EgressRequest(str(run), f"{vault}ed/m", latest=1)  # .../vaulted is not .../vault

    with pytest.raises(Exception, match="accepts at most public"):
        run_egress(ledger, vault_policy(vault), WHO, request, CONFIG)

    outcome = run_egress(
        ledger, vault_policy(vault), WHO, EgressRequest(str(run), f"{vault}/m", latest=1), CONFIG
    )
    assert (
        outcome.result is not None
        and (vault / "m" / "checkpoint-100" / "model.bin").read_bytes() == b"new weights"
    )


@pytest.mark.parametrize("segment", ["/./", "//"])
def test_a_destination_with_a_dot_or_empty_segment_is_refused(
    ledger: Ledger, tmp_path: Path, segment: str
) -> None:
    run = make_run(tmp_path, "public")
    destination = f"{tmp_path}{segment}out"

    with pytest.raises(InvalidInputError, match="segment"):
        run_egress(ledger, Policy.default(), WHO, EgressRequest(str(run), destination, latest=1), CONFIG)

    assert not (tmp_path / "out").exists()


def test_a_rerun_keeps_the_files_an_earlier_egress_verified_there(ledger: Ledger, tmp_path: Path) -> None:
    """What an interrupted or finished egress left at its names (same size, same BLAKE3 read
    back) is recognised, not refused as "exists"; a file with other bytes still is."""
    run = make_run(tmp_path, "public")
    dest = tmp_path / "share"
    request = EgressRequest(str(run), str(dest), latest=1)
    first = run_egress(ledger, Policy.default(), WHO, request, CONFIG)
    assert first.result is not None and first.result.files_present == 0
    linked = (dest / "checkpoint-100" / "model.bin").stat().st_ino

    again = run_egress(ledger, Policy.default(), WHO, request, CONFIG)

    assert again.result is not None
    assert again.result.files_present == len(again.result.files) == 3
    assert again.result.checksums == first.result.checksums
    assert (dest / "checkpoint-100" / "model.bin").stat().st_ino == linked  # not written again

    (run / "checkpoint-100" / "model.bin").write_bytes(b"newer weights")
    with pytest.raises(ExistsError, match=r"model\.bin already exists"):
        run_egress(ledger, Policy.default(), WHO, request, CONFIG)
    assert (dest / "checkpoint-100" / "model.bin").read_bytes() == b"new weights"


def test_each_file_is_fsynced_once_before_its_name_appears(tmp_path: Path) -> None:
    from stagegate.transfer.egress import EgressConfig, egress

    run = make_run(tmp_path, "public")
    dest = tmp_path / "share"
    synced: list[int] = []  # the inode behind each descriptor the engine fsynced

    def recording_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        os.fsync(fd)

    checkpoint = type("C", (), {"name": "checkpoint-100", "is_dir": True})()
    result = egress(str(run), [checkpoint], str(dest), EgressConfig(concurrency=2), fsync=recording_fsync)

    written = sorted((dest / key).stat().st_ino for key in result.checksums)  # link(2) keeps the inode
    assert len(written) == 3
    assert sorted(i for i in synced if i in written) == written  # every file once, none twice
    # and, after the last link, the one directory that got new names: no file a second time
    assert [i for i in synced if i not in written] == [(dest / "checkpoint-100").stat().st_ino]
