"""transfer.sources.mounts: which filesystem a path is on, from a mountinfo text."""

import pytest

from stagegate.transfer.sources.mounts import filesystem_type, is_network_filesystem

MOUNTINFO = "\n".join(
    [
        "22 1 0:21 / / rw,relatime - ext4 /dev/vda rw",
        "23 22 0:22 / /proc rw,relatime - proc proc rw",
        "30 22 0:40 / /data rw,relatime shared:5 - nfs4 server:/export rw,vers=4.2",
        "31 30 0:41 / /data/scratch rw,relatime - xfs /dev/nvme0n1 rw",
        "32 22 0:42 / /mnt/with\\040space rw - fuse.s3fs s3fs rw",
        "33 22 0:43 / /data2 rw - tmpfs tmpfs rw",
    ]
)


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/home/u/set", "ext4"),
        ("/data", "nfs4"),
        ("/data/set/a", "nfs4"),
        ("/data/scratch/set", "xfs"),  # mounted over the NFS one
        ("/data2/x", "tmpfs"),  # not under /data: a prefix of the name is no parent
        ("/mnt/with space/x", "fuse.s3fs"),
    ],
)
def test_the_deepest_mount_above_a_path_decides(path: str, fstype: str) -> None:
    assert filesystem_type(path, MOUNTINFO) == fstype


def test_network_filesystems_and_the_unknown_count_as_waiting() -> None:
    assert is_network_filesystem("nfs4")
    assert is_network_filesystem("fuse.s3fs")
    assert is_network_filesystem("lustre")
    assert is_network_filesystem(None)
    assert not is_network_filesystem("ext4")
    assert not is_network_filesystem("xfs")
    assert not is_network_filesystem("tmpfs")


def test_a_later_mount_over_the_same_point_wins() -> None:
    text = MOUNTINFO + "\n40 22 0:50 / /data rw - ext4 /dev/vdb rw"
    assert filesystem_type("/data/x", text) == "ext4"
