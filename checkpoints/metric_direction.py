"""Which way a metric is better, when its name says so: ``eval_loss`` lower, ``val/accuracy``
higher. ``--best METRIC`` without ``--mode`` uses this, and is refused for a name it cannot read,
rather than silently taking the lowest (which picks the worst checkpoint by accuracy). Pure."""

import re

from stagegate.checkpoints.checkpoint import Mode
from stagegate.errors import InvalidInputError

# Words that name a quantity to minimise or to maximise, matched whole within the metric's name
# split at punctuation (``eval_top1_acc`` -> eval, top1, acc).
LOWER_IS_BETTER = frozenset(
    {"loss", "error", "err", "perplexity", "ppl", "wer", "cer", "mse", "mae", "rmse", "nll", "fid", "latency"}
)
HIGHER_IS_BETTER = frozenset(
    {
        "accuracy", "acc", "f1", "precision", "recall", "auc", "auroc", "bleu", "rouge", "map",
        "iou", "miou", "dice", "reward", "return", "psnr", "ssim", "top1", "top5", "exact", "em",
    }
)


def direction_of(metric: str) -> Mode | None:
    """``"min"`` or ``"max"`` if the name of ``metric`` says which is better, else None (also when
    it names words of both kinds, as ``loss_acc_ratio`` does)."""
    words = set(re.split(r"[^a-z0-9]+", metric.lower()))
    lower, higher = bool(words & LOWER_IS_BETTER), bool(words & HIGHER_IS_BETTER)
    if lower == higher:
        return None
    return "min" if lower else "max"


def best_mode(metric: str, mode: str | None) -> Mode:
    """The mode ``--best metric`` runs with: ``mode`` when given, else the metric's known
    direction; an unknown direction is an error naming the fix."""
    if mode is not None:
        if mode not in ("min", "max"):
            raise InvalidInputError(f"--mode must be min or max, not {mode!r}")
        return "min" if mode == "min" else "max"
    known = direction_of(metric)
    if known is None:
        raise InvalidInputError(
            f"--best {metric}: is lower or higher better? Pass --mode min or --mode max "
            f"(without it, only names saying so are understood, such as loss or accuracy)"
        )
    return known
