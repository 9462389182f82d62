"""What an entry's name says of a checkpoint (Hugging Face, Lightning, plain steps); pure."""

import math
import re
from pathlib import Path

from stagegate.checkpoints.checkpoint import NameInfo

# Suffixes of weights files; a file with one of these but no step in its name is reported, not taken.
WEIGHT_SUFFIXES = frozenset({".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".h5", ".pkl", ".msgpack"})

_HF_NAME = re.compile(r"checkpoint-(\d+)")
_PLAIN_NAME = re.compile(
    r"(?:step|steps|ckpt|checkpoint|model|iter|iteration|global_step|global-step)[-_]?(\d+)(\.\w+)?",
    re.IGNORECASE,
)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?|[-+]?(?:nan|inf)"
# Lightning joins "key=value" pairs with "-", and a metric name may itself hold "-" or "_". The
# first pair's key is taken as the text after the last "-" before its "=" (so a free prefix such
# as "mnist-" is dropped); later keys run from the "-" ending the previous value to their "=".
_FIRST_PAIR = re.compile(rf"(?:[^=]*-)?(?P<key>[^=\-]+)=(?P<value>{_NUMBER})(?=-|\Z)", re.IGNORECASE)
_NEXT_PAIR = re.compile(rf"-(?P<key>[^=]+)=(?P<value>{_NUMBER})(?=-|\Z)", re.IGNORECASE)
_LIGHTNING_VERSION = re.compile(r"-v\d+\Z")  # ModelCheckpoint's suffix for a name saved twice


def parse_name(name: str, *, is_dir: bool) -> NameInfo | None:
    """What ``name`` says of a checkpoint, or None if it follows none of the conventions."""
    if is_dir and (m := _HF_NAME.fullmatch(name)):
        return NameInfo("huggingface", int(m.group(1)))
    if m := _PLAIN_NAME.fullmatch(name):
        suffix = (m.group(2) or "").lower()
        if not suffix or suffix in WEIGHT_SUFFIXES:  # not ckpt-1000.index: TensorFlow's files are not entries
            return NameInfo("plain", int(m.group(1)))
    if name.lower().endswith(".ckpt"):
        return _parse_lightning(name[: -len(".ckpt")])
    return None


def _parse_lightning(stem: str) -> NameInfo | None:
    stem = _LIGHTNING_VERSION.sub("", stem)
    if "=" not in stem:
        return NameInfo("lightning", None)  # last.ckpt, best.ckpt: a checkpoint without a step
    m = _FIRST_PAIR.match(stem)
    if m is None:
        return None
    pairs = [(m["key"], m["value"])]
    pos = m.end()
    while pos < len(stem):
        m = _NEXT_PAIR.match(stem, pos)
        if m is None:
            return None
        pairs.append((m["key"], m["value"]))
        pos = m.end()
    step: int | None = None
    metrics: dict[str, float] = {}
    notes: list[str] = []
    for key, text in pairs:
        value = float(text)
        if key == "step" and value.is_integer() and value >= 0:
            step = int(value)
        elif math.isnan(value):
            notes.append(f"{key} is NaN in the name; ignored")
        else:
            metrics[key] = value
    return NameInfo("lightning", step, metrics, tuple(notes))


def look_alike_reason(name: str, *, is_dir: bool) -> str | None:
    """Why an unparsed entry is not a checkpoint, if it looks like one; None if it does not."""
    lower = name.lower()
    if lower.startswith("tmp-checkpoint-"):
        return "an unfinished save (the Trainer renames tmp-checkpoint-N when it is complete)"
    if lower.endswith(".ckpt"):
        return "a .ckpt name with key=value parts that could not be parsed"
    suffix = Path(lower).suffix
    if suffix in WEIGHT_SUFFIXES and not is_dir:
        return f"a {suffix} file without a step in its name (final weights, or an unknown convention)"
    if any(word in lower for word in ("ckpt", "checkpoint", "step")):
        return "the name mentions checkpoints but follows no known convention"
    return None
