"""Scoring: a predicted mask against the true one, as pixel counts and the IoU, F1, precision and recall made of them.

One rule for every caller (train.py's validation, predict.py, the benchmarks) and for the Keras metrics of training:
when a ratio has no pixel to count, its masks were both empty and the prediction was right, so it is 1; when only
its denominator is 0 (precision with no predicted pixel but a missed one), it is 0.
"""

from typing import Optional

import keras2  # noqa: F401

import numpy as np
import pandas as pd
import tensorflow as tf

from classes import IGNORED

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


def class_pixel_counts(predicted: np.ndarray, true: np.ndarray, classes: int) -> list[dict[str, int]]:
    """pixel_counts of each class in two label masks, the ignored pixels of the true one left out."""
    counted = true != IGNORED
    return [pixel_counts((predicted == k) & counted, true == k) for k in range(classes)]


def class_rows(name: str, predicted: np.ndarray, true: np.ndarray, names: list[str]) -> list[dict]:
    """One image's rows of metrics.csv with several classes: a row a class, with its scores and pixel counts."""
    return [
        {"image": name, "class": class_name, **ratios(**counts), **counts}
        for class_name, counts in zip(names, class_pixel_counts(predicted, true, len(names)))
    ]


def image_rows(name: str, predicted: np.ndarray, true: np.ndarray, names: Optional[list[str]]) -> list[dict]:
    """One image's rows of metrics.csv: image_row of two boolean masks, or with several classes (names) class_rows
    of two label masks."""
    return class_rows(name, predicted, true, names) if names else [image_row(name, predicted, true)]


def print_table(table: pd.DataFrame, names: Optional[list[str]]) -> None:
    """print_scores of a metrics.csv table, or with several classes (names) print_class_scores."""
    if names:
        print_class_scores(table, names)
    else:
        print_scores(table)


def print_class_scores(table: pd.DataFrame, names: list[str]) -> None:
    """Each class's micro IoU (from all its pixels) and mean IoU over images, and their means over the foreground
    classes (every class but the first, the background)."""
    print(f"{table.image.nunique()} images scored, {len(names)} classes")
    micro, mean = [], []
    for class_name in names:
        rows = table[table["class"] == class_name]
        micro.append(ratios(rows.tp.sum(), rows.fp.sum(), rows.fn.sum())["iou"])
        mean.append(rows.iou.mean())
        print(f"  {class_name}: micro IoU {micro[-1]:.4f}, mean IoU over images {mean[-1]:.4f}")
    print(f"  foreground classes: micro IoU {np.mean(micro[1:]):.4f}, mean IoU over images {np.mean(mean[1:]):.4f}")


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


class ClassScore(tf.keras.metrics.IoU):
    """IoU or F1 of one class, or their mean over the foreground classes (1 to classes - 1), from the confusion
    matrix of every batch of an epoch on every device: the labels against the most probable class, ignored pixels
    left out. By the module's rule: 1 for a class that was neither true nor predicted (Keras' IoU gives 0)."""

    def __init__(self, classes: int, score: str = "iou", class_id: Optional[int] = None, name=None, dtype=None):
        if score not in ("iou", "f1"):
            raise ValueError(f"score {score!r}: expected iou or f1")
        targets = [class_id] if class_id is not None else list(range(1, classes))
        super().__init__(classes, targets, name=name or score, dtype=dtype, ignore_class=IGNORED, sparse_y_pred=False)
        self.score, self.class_id = score, class_id

    def result(self) -> tf.Tensor:
        tp = tf.linalg.diag_part(self.total_cm)
        fp, fn = tf.reduce_sum(self.total_cm, 0) - tp, tf.reduce_sum(self.total_cm, 1) - tp
        extra = tp if self.score == "f1" else 0.0
        denominator = tp + fp + fn + extra
        each = tf.where(denominator > 0, tf.math.divide_no_nan(tp + extra, denominator), tf.ones_like(denominator))
        return tf.reduce_mean(tf.gather(each, self.target_class_ids))

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("target_class_ids", "ignore_class", "sparse_y_true", "sparse_y_pred", "axis"):
            config.pop(key, None)
        return {**config, "classes": config.pop("num_classes"), "score": self.score, "class_id": self.class_id}


def metric_name(class_name: str) -> str:
    """A class name as it can stand in a metric's name and a CSV column: letters, digits and _."""
    return "".join(c if c.isalnum() else "_" for c in class_name)


def class_metrics(names: list[str]) -> list[tf.keras.metrics.Metric]:
    """Logged as iou and f1 (the means over the foreground classes) and iou_<name> for each class."""
    scores = [ClassScore(len(names), "iou"), ClassScore(len(names), "f1")]
    return scores + [ClassScore(len(names), "iou", k, f"iou_{metric_name(n)}") for k, n in enumerate(names)]
