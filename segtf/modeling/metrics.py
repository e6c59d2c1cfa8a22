"""Scoring: a predicted mask against the true one, as pixel counts and the IoU, F1, precision and recall made of them.

One rule for every caller (train.py's validation, predict.py, the benchmarks) and for the Keras metrics of training:
when a ratio has no pixel to count, its masks were both empty and the prediction was right, so it is 1; when only
its denominator is 0 (precision with no predicted pixel but a missed one), it is 0.
"""

from typing import Optional

from segtf.dataset.classes import IGNORED

import tensorflow as tf


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
