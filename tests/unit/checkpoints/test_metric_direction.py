"""Which way a metric is better, from its name; and the refusal when the name does not say."""

import pytest

from stagegate.checkpoints.metric_direction import best_mode, direction_of
from stagegate.errors import InvalidInputError


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("loss", "min"), ("eval_loss", "min"), ("val/loss", "min"), ("train-perplexity", "min"),
        ("test_wer", "min"), ("val_error", "min"),
        ("accuracy", "max"), ("val_acc", "max"), ("eval_f1", "max"), ("val/top1", "max"),
        ("bleu", "max"), ("mean_reward", "max"),
        ("score", None), ("val_metric", None), ("step", None), ("loss_acc_ratio", None),
        # Whole words only: "lossless" is no loss, "accurate" no accuracy.
        ("lossless_size", None), ("accurate_count", None),
    ],
)
def test_direction_is_read_from_whole_words_of_the_name(metric: str, direction: str | None) -> None:
    assert direction_of(metric) == direction


def test_an_explicit_mode_always_wins() -> None:
    assert best_mode("val_acc", "min") == "min"
    assert best_mode("anything", "max") == "max"


def test_an_unknown_direction_without_mode_is_refused_naming_the_fix() -> None:
    with pytest.raises(InvalidInputError, match=r"--best score: .*--mode min or --mode max"):
        best_mode("score", None)


def test_a_bad_mode_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="min or max"):
        best_mode("loss", "lowest")
