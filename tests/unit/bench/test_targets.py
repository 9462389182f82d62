"""The bench's targets read against the best peer of the run, as issue 11 states them."""

from bench.summary import BEST_PEER, TARGETS, Summary, Target, ratios


def _summary(tool: str, durable: bool, mb_s: float, synced_mb_s: float, cpu_per_gib: float) -> Summary:
    return Summary(
        tool=tool, durable=durable, runs=3, wall_s=1.0, synced_wall_s=1.0, sync_s=0.0,
        mb_s=mb_s, synced_mb_s=synced_mb_s, files_s=1.0, synced_files_s=1.0, cpu_s=1.0,
        cpu_s_per_gib=cpu_per_gib, cpu_ms_per_file=cpu_per_gib, rss_mb=50.0, server_cpu_s=0.0,
        other_cpu_s=0.0,
    )  # fmt: skip


SUMMARIES = [
    _summary("stagegate", True, 172, 172, 2.44),
    _summary("s5cmd", False, 148, 136, 1.93),
    _summary("rclone", False, 442, 369, 1.61),  # fastest with +sync: the best peer
    _summary("rclone-1.75", False, 218, 202, 1.02),  # cheapest, but not the best peer
]


def test_the_best_peer_is_the_fastest_with_its_sync() -> None:
    target = Target("s3-big", "", BEST_PEER, "throughput_vs_synced", 1.0)
    found = ratios(SUMMARIES)
    ratio = target.against(SUMMARIES[0], found)
    assert ratio is not None and ratio.peer == "rclone"
    value = target.measure(SUMMARIES[0], found)
    assert value is not None and round(value, 3) == round(172 / 369, 3)
    assert not target.met(value)


def test_cpu_is_read_against_that_same_best_peer() -> None:
    target = Target("s3-big", "", BEST_PEER, "cpu_per_gib", 1.0)
    value = target.measure(SUMMARIES[0], ratios(SUMMARIES))
    assert value is not None and round(value, 3) == round(2.44 / 1.61, 3)
    assert not target.met(value) and target.met(0.99)


def test_a_named_peer_that_did_not_run_is_not_measured() -> None:
    target = Target("posix-big", "", "cp", "cpu_per_gib", 1.5)
    assert target.measure(SUMMARIES[0], ratios(SUMMARIES)) is None


def test_every_scenario_has_the_throughput_target() -> None:
    throughput = {t.scenario for t in TARGETS if t.metric == "throughput_vs_synced" and t.peer == BEST_PEER}
    assert throughput == {"posix-big", "posix-small", "s3-big", "s3-small"}
