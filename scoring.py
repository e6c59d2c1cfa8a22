"""Scoring: a predicted mask against the true one, as pixel counts and the IoU, F1, precision and recall made of them.

One rule for every caller (train.py's validation, predict.py, the benchmarks) and for the Keras metrics of training:
when a ratio has no pixel to count, its masks were both empty and the prediction was right, so it is 1; when only
its denominator is 0 (precision with no predicted pixel but a missed one), it is 0.
"""

import keras2  # noqa: F401

import numpy as np
import pandas as pd
import tensorflow as tf

SCORES = ("iou", "f1", "precision", "recall")


def pixel_counts(predicted: np.ndarray, true: np.ndarray) -> dict[str, int]:
    """True positives, false positives and false negatives of two boolean masks of one shape."""
    return {
        "tp": int(np.count_nonzero(predicted & true)),
        "fp": int(np.count_nonzero(predicted & ~true)),
        "fn": int(np.count_nonzero(~predicted & true)),
    }


def ratios(tp: int, fp: int, fn: int) -> dict[str, float]:
    """IoU, F1, precision and recall of pixel counts: 1 where both masks are empty (see the module's rule)."""
    both_empty = float(tp + fp + fn == 0)

    def ratio(numerator: int, denominator: int) -> float:
        return numerator / denominator if denominator else both_empty

    return {
        "iou": ratio(tp, tp + fp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }


def bootstrap_interval(values: np.ndarray, resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of the mean of values (over images: how far the mean could move with
    other images of the same kind)."""
    values = np.asarray(values, np.float64)
    means = values[np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def print_scores(table: pd.DataFrame) -> None:
    """The mean over images of a table of scores (a row an image, columns SCORES and pixel counts), with the 95%
    interval of the mean IoU, the micro average of all pixels and the five worst images."""
    means = table[list(SCORES)].mean()
    micro = ratios(table.tp.sum(), table.fp.sum(), table.fn.sum())
    low, high = bootstrap_interval(table.iou)
    print(f"{len(table)} images scored")
    print("  mean over images: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))
    print(f"  mean IoU's 95% bootstrap interval over images: {low:.4f} to {high:.4f}")
    print("  micro (all pixels): " + ", ".join(f"{k} {v:.4f}" for k, v in micro.items()))
    print(
        "  five worst by IoU: " + ", ".join(f"{r.image} ({r.iou:.3f})" for r in table.nsmallest(5, "iou").itertuples())
    )


def scores(predicted: np.ndarray, true: np.ndarray) -> dict:
    """ratios and pixel_counts of two boolean masks."""
    counts = pixel_counts(predicted, true)
    return {**ratios(**counts), **counts}


def image_row(name: str, predicted: np.ndarray, true: np.ndarray) -> dict:
    """One image's row of metrics.csv: its name, scores, and the shares of true and predicted foreground."""
    return {
        "image": name,
        **scores(predicted, true),
        "true_foreground": true.mean(),
        "predicted_foreground": predicted.mean(),
    }


class ForegroundScore(tf.keras.metrics.BinaryIoU):
    """IoU or F1 of the foreground at a threshold, from the pixel counts of every batch of an epoch on every device
    (not a mean over batches), by the module's rule: 1 when nothing was true or predicted (BinaryIoU gives 0)."""

    def __init__(self, score: str = "iou", threshold: float = 0.5, name: str = None, dtype=None):
        if score not in ("iou", "f1"):
            raise ValueError(f"score {score!r}: expected iou or f1")
        super().__init__(target_class_ids=[1], threshold=threshold, name=name or score, dtype=dtype)
        self.score = score

    def result(self) -> tf.Tensor:
        tp, fp, fn = self.total_cm[1, 1], self.total_cm[0, 1], self.total_cm[1, 0]
        extra = tp if self.score == "f1" else 0.0  # F1 = 2 tp / (2 tp + fp + fn)
        denominator = tp + fp + fn + extra
        return tf.where(denominator > 0, tf.math.divide_no_nan(tp + extra, denominator), tf.ones_like(denominator))

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("target_class_ids", None)
        return {**config, "score": self.score}


def dataset_metrics() -> list[tf.keras.metrics.Metric]:
    """IoU and F1 of the foreground at 0.5, from the pixels of the whole epoch, logged as iou and f1."""
    return [ForegroundScore("iou"), ForegroundScore("f1")]
