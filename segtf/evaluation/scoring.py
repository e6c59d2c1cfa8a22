"""Scoring: a predicted mask against the true one, as pixel counts and the IoU, F1, precision and recall made of them.

One rule for every caller (train.py's validation, predict.py, the benchmarks) and for the Keras metrics of training:
when a ratio has no pixel to count, its masks were both empty and the prediction was right, so it is 1; when only
its denominator is 0 (precision with no predicted pixel but a missed one), it is 0.
"""

from typing import Optional

from segtf.dataset.classes import IGNORED
from segtf.text import counted

import numpy as np
import pandas as pd

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
    print(f"{counted(len(table), 'image')} scored")
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
    print(f"{counted(table.image.nunique(), 'image')} scored, {len(names)} classes")
    micro, mean = [], []
    for class_name in names:
        rows = table[table["class"] == class_name]
        micro.append(ratios(rows.tp.sum(), rows.fp.sum(), rows.fn.sum())["iou"])
        mean.append(rows.iou.mean())
        print(f"  {class_name}: micro IoU {micro[-1]:.4f}, mean IoU over images {mean[-1]:.4f}")
    print(f"  foreground classes: micro IoU {np.mean(micro[1:]):.4f}, mean IoU over images {np.mean(mean[1:]):.4f}")
