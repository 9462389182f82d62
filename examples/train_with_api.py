"""Stage a dataset, train on it, release it: the Python API as a training script uses it.

Here, in this process (no services; the shipped example dataset by default):

    python examples/train_with_api.py --to /tmp/stagegate-train

Through the service, onto this GPU node's NVMe (STAGEGATE_URL and STAGEGATE_TOKEN set):

    python examples/train_with_api.py s3://datasets/mini --node "$NODE_NAME"

It exits 3 when the policy denies the dataset, 1 when the staging fails, as the CLI does.
"""

import argparse
import sys
from pathlib import Path

import stagegate

EXAMPLE_DATASET = Path(__file__).resolve().parent / "dataset"


def train(data: Path) -> int:
    """A stand-in for the training loop: read every file once, return the bytes read."""
    seen = 0
    for path in sorted(data.rglob("*")):
        if path.is_file():
            seen += len(path.read_bytes())
    return seen


def show(p: stagegate.Progress) -> None:
    print(f"\rstaging: {p.files_done}/{p.files_total} files, {p.bytes_done}/{p.bytes_total} bytes", end="")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", nargs="?", default=str(EXAMPLE_DATASET))
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", type=Path, help="stage here, into this directory")
    where.add_argument("--node", help="stage through the service onto this node")
    parser.add_argument("--job", default="train-example", help="your job's reference, for the audit trail")
    args = parser.parse_args()
    try:
        if args.to is not None:
            staged = stagegate.stage(args.source, to=args.to, job=args.job, progress=show)
            print(f"\nstaged {staged.files} files ({staged.files_kept} kept), digest {staged.digest}")
            print(f"trained on {train(staged.path)} bytes")
            return 0
        with stagegate.Client() as service:
            staging = service.stage(
                args.source, nodes=[args.node], job=args.job, pin_ttl=4 * 3600, progress=show
            )
            try:
                (mine,) = [n for n in staging.nodes if n.node == args.node]
                assert mine.path is not None  # a ready node has its path
                print(f"\nstaged {staging.id} at {mine.path}")
                print(f"trained on {train(Path(mine.path))} bytes")
            finally:
                service.release(staging.id)  # the pin ends with the job, not with its TTL
                print(f"released {staging.id}")
            return 0
    except (stagegate.PolicyDeniedError, stagegate.StagingDeniedError) as exc:
        print(f"\nstagegate: {exc}", file=sys.stderr)
        return 3
    except stagegate.StagegateError as exc:
        print(f"\nstagegate: failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
