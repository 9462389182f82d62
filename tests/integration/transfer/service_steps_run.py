"""A node worker's steps in a process of its own, so a test can kill it with SIGKILL: every
batch of the plan through ``copy_batch`` (run again, the batches already done come back
done, as a redelivered task's would), then ``publish_batches``. One JSON line a batch on
stdout, then the published result.

Usage: python service_steps_run.py SOURCE DEST SCRATCH BATCH_MAX_FILES [BANDWIDTH [PROCESSES]]
(BANDWIDTH 0: none; PROCESSES: copy processes for small files, each opening the source anew)
"""

import json
import sys
from pathlib import Path

from stagegate.transfer import TransferConfig, copy_batch, open_source, plan_dataset, publish_batches
from stagegate.transfer.dataset_source import ready_selection
from stagegate.transfer.parts import batched_by_weight
from stagegate.transfer.sources import source_recipe

LABEL_FILE = ".classification"


def main(url: str, dest: str, scratch: str, max_files: int, bandwidth: int | None, processes: int) -> None:
    plan = plan_dataset(open_source(url), Path(scratch) / "plan.jsonl", LABEL_FILE)
    config = TransferConfig(
        concurrency=4, bandwidth_limit=bandwidth, batch_max_files=max_files, processes=processes
    )
    batches = list(batched_by_weight(plan.entries(), lambda o: o.size, config.batch_max_bytes, max_files))
    for index, objects in enumerate(batches):
        # A fresh source per task, as each task of a worker opens its own.
        result = copy_batch(
            open_source(url), Path(dest), index, objects, config,
            label_file_name=LABEL_FILE, label_files=plan.label_files, source_recipe=source_recipe(url),
        )  # fmt: skip
        print(json.dumps(result.to_json()), flush=True)
    published = publish_batches(
        Path(dest),
        source_url=plan.source_url,
        digest=plan.digest,
        batches=len(batches),
        files=plan.files,
        bytes=plan.bytes,
        selection=ready_selection(plan.source_url),
    )
    print(json.dumps({"published": published.to_json()}), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    bandwidth = int(args[4]) if len(args) > 4 and int(args[4]) else None
    main(args[0], args[1], args[2], int(args[3]), bandwidth, int(args[5]) if len(args) > 5 else 1)
