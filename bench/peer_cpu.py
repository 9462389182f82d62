"""``python -m bench.peer_cpu``: the CPU of peer fan-out on this machine, for the simulator's
``serve_cpu_*`` and ``peer_cpu_*`` (:mod:`bench.sim_model`).

The serving side is the real peer server's handler (``workers/peer_server._handler``: the
credential check, then the file in 1 MiB ``pread``s to the socket) in a process of its own,
over a stub that opens files of a scratch directory in place of the ledger lookup; its CPU is
that process's user + system time (``/proc/<pid>/stat``) across the reads. The receiving side
is the real copy step (``transfer.copy_batch``) reading from a :class:`workers.peer_source.
PeerSource` (BLAKE3 checked against the expected digest, written, made durable), its CPU this
process's. Two workloads: few big files (per GiB) and many small ones (per file); each is
solved as ``cpu = files * per_file + GiB * per_gib`` from the two.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1 << 30
SECRET = "bench-peer-credential-0123456789abcdef"


def _serve(root: Path, port_file: Path) -> None:
    """The real handler over ``root``'s files (the ledger lookup stubbed), until killed."""
    from http.server import ThreadingHTTPServer

    from stagegate.workers.peer_paths import parse_peer_path
    from stagegate.workers.peer_server import ServedFile, _handler

    class Files:
        def open(self, path: str) -> ServedFile:
            _, _, key = parse_peer_path(path)
            fd = os.open(root / key, os.O_RDONLY | os.O_CLOEXEC)
            return ServedFile(fd, os.fstat(fd).st_size)

    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Files(), SECRET))  # type: ignore[arg-type]
    server.daemon_threads = True
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workload(scratch: Path, name: str, files: int, size: int) -> tuple[Path, dict[str, str]]:
    from blake3 import blake3

    root = scratch / name
    root.mkdir()
    expected = {}
    block = os.urandom(size)
    for i in range(files):
        key = f"{i:06d}.bin"
        data = block[i % 997 :] + block[: i % 997]
        (root / key).write_bytes(data)
        expected[key] = blake3(data).hexdigest()
    return root, expected


def measure(files: int, size: int, scratch: Path) -> dict[str, float]:
    """One workload: the server's and the receiver's CPU seconds, and the wall time."""
    from stagegate.ledger.fanout import Peer
    from stagegate.transfer import SourceObject, TransferConfig, copy_batch
    from stagegate.workers.peer_source import PeerSource

    name = f"w{files}x{size}"
    root, expected = _workload(scratch, name, files, size)
    port_file = scratch / f"{name}.port"
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.peer_cpu", "--serve", str(root), str(port_file)],
    )
    try:
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        source = PeerSource(Peer("server", url), "job", 0, SECRET, expected)
        objects = [SourceObject(k, size) for k in sorted(expected)]
        config = TransferConfig(concurrency=4)
        destination = scratch / f"{name}.out"
        destination.mkdir()
        serve0, own0, wall0 = _cpu_of(server.pid), time.process_time(), time.perf_counter()
        copy_batch(source, destination, 0, objects, config, label_gate=lambda obj, now: None)
        wall = time.perf_counter() - wall0
        own, serve = time.process_time() - own0, _cpu_of(server.pid) - serve0
    finally:
        server.kill()
        server.wait()
    return {
        "files": files,
        "gib": files * size / GIB,
        "serve_cpu_s": serve,
        "receive_cpu_s": own,
        "wall_s": wall,
    }


def solve(big: dict[str, float], small: dict[str, float], side: str) -> tuple[float, float]:
    """(ms per file, s per GiB) from the two workloads' CPU seconds of ``side``."""
    # cpu = files * f + gib * g, two equations
    a1, b1, c1 = big["files"], big["gib"], big[side]
    a2, b2, c2 = small["files"], small["gib"], small[side]
    det = a1 * b2 - a2 * b1
    per_file = (c1 * b2 - c2 * b1) / det
    per_gib = (a1 * c2 - a2 * c1) / det
    return per_file * 1e3, per_gib


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=2, metavar=("ROOT", "PORT_FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--big", type=int, default=64, help="files of 16 MiB (the per-GiB workload)")
    parser.add_argument("--small", type=int, default=2000, help="files of 16 KiB (the per-file workload)")
    args = parser.parse_args(argv)
    if args.serve:
        _serve(Path(args.serve[0]), Path(args.serve[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="sg-peer-cpu-") as tmp:
        big = measure(args.big, 16 << 20, Path(tmp))
        small = measure(args.small, 16 << 10, Path(tmp))
    load = os.getloadavg()[0]
    serve = solve(big, small, "serve_cpu_s")
    receive = solve(big, small, "receive_cpu_s")
    print(json.dumps({"big": big, "small": small, "load_1m": load}))
    print(f"serving:   {serve[0]:.2f} ms per file, {serve[1]:.2f} s per GiB (load {load:.1f})")
    print(f"receiving: {receive[0]:.2f} ms per file, {receive[1]:.2f} s per GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
