"""bench.fanout's pure parts: the S3 GETs it counts, and each variant's source cap."""

import argparse

from bench.fanout import NODES, object_gets, source_cap

LOG = """\
127.0.0.1 - - [01/Dec/2026 21:54:04] "GET /bench?list-type=2&prefix=fan-2x1MiB%2F HTTP/1.1" 200 -
127.0.0.1 - - [01/Dec/2026 21:54:04] "GET /bench/fan-2x1MiB/.classification HTTP/1.1" 206 -
127.0.0.1 - - [01/Dec/2026 21:54:04] "HEAD /bench/fan-2x1MiB/f/0000000.bin HTTP/1.1" 200 -
127.0.0.1 - - [01/Dec/2026 21:54:05] "GET /bench/fan-2x1MiB/f/0000000.bin HTTP/1.1" 200 -
127.0.0.1 - - [01/Dec/2026 21:54:05] "GET /bench/fan-2x1MiB/f/0000001.bin HTTP/1.1" 206 -
127.0.0.1 - - [01/Dec/2026 21:54:05] "GET /bench/fan-2x1MiB0/f/0000001.bin HTTP/1.1" 200 -
127.0.0.1 - - [01/Dec/2026 21:54:05] "PUT /bench/fan-2x1MiB/f/0000001.bin HTTP/1.1" 200 -
"""


def test_only_gets_of_the_datasets_objects_count() -> None:
    # Not the listing, the label file, a HEAD, a PUT, nor another prefix that starts alike.
    assert object_gets(LOG, "fan-2x1MiB") == 2


def test_the_source_cap_is_per_node_unless_split_among_the_readers() -> None:
    per_node = argparse.Namespace(source_cap="3MiB", source_split=False)
    assert source_cap("replicate", per_node) == source_cap("fanout", per_node) == "3MiB"
    split = argparse.Namespace(source_cap="3MiB", source_split=True)
    assert source_cap("replicate", split) == str((3 << 20) // len(NODES))
    assert source_cap("fanout", split) == "3MiB"  # its one reader has the whole source
