"""Benchmark harness: stagegate against s5cmd, rclone, the aws CLI and cp on generated data.

Run from the repository root: ``python -m bench --help``.
"""
