"""Find the checkpoints in a training run directory, and choose which ones to keep.

A run directory holds checkpoints as entries, files or directories, named after one of the
common conventions:

- Hugging Face Trainer: ``checkpoint-500/`` holding ``trainer_state.json`` (``global_step`` and a
  ``log_history`` whose entries carry metrics such as ``eval_loss`` at a ``step``);
- PyTorch Lightning: ``epoch=3-step=1000-val_loss=0.23.ckpt`` (also ``last.ckpt``, ``-v1`` copies,
  a free prefix such as ``mnist-epoch=3...``, and ``.ckpt`` directories of sharded strategies);
- plain names: ``step_1000/``, ``step-1000.pt``, ``ckpt-1000``, ``model_1000.safetensors``,
  ``global_step1000/`` (DeepSpeed).

Anything else (logs, TensorBoard event files, ``config.json``, a run-level ``metrics.json``) is
not a checkpoint. Entries that *look* like one (a weights suffix, "ckpt", "checkpoint" or "step"
in the name) but cannot be parsed are reported, so a dry run can say why they were left out.

Discovery (:mod:`checkpoints.discover`, :mod:`checkpoints.run_files`) is the only I/O; names
(:mod:`checkpoints.names`), metrics (:mod:`checkpoints.metrics`), selection
(:mod:`checkpoints.selection`) and its explanation (:mod:`checkpoints.explanation`) are pure.
The package imports nothing of ours but the ``stagegate`` kernel; the engine (``transfer``) never
imports it: egress takes any object with a checkpoint's name, path and kind.
"""

from stagegate.checkpoints.checkpoint import Checkpoint, Mode, NameInfo, RunScan, Selection
from stagegate.checkpoints.discover import discover, scan_run
from stagegate.checkpoints.explanation import explain
from stagegate.checkpoints.metric_direction import best_mode, direction_of
from stagegate.checkpoints.names import parse_name
from stagegate.checkpoints.selection import select

__all__ = [
    "Checkpoint",
    "Mode",
    "NameInfo",
    "RunScan",
    "Selection",
    "best_mode",
    "direction_of",
    "discover",
    "explain",
    "parse_name",
    "scan_run",
    "select",
]
