"""The choice of post-processing on out-of-fold predictions, by nnU-Net's rule: a step is kept only when it raises
the cross-validation IoU. The steps themselves are inference/postprocessing.py."""

from functools import partial
from typing import Callable, Optional, Sequence

from segtf.evaluation.scoring import class_pixel_counts, pixel_counts, ratios
from segtf.inference.postprocessing import (
    NO_POSTPROCESSING,
    component_labels,
    component_sizes,
    postprocess,
    postprocess_labels,
)

import numpy as np
import tensorflow as tf

THRESHOLDS = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
# min_size candidates: half of each of these quantiles of the sizes of the true masks' components (as shares of their
# images), from half the smallest: below it a predicted component is more likely a speck than a part of the object
SIZE_QUANTILES = [0, 0.01, 0.05, 0.1, 0.25]
# a step is kept only when it raises the out-of-fold IoU by this much: a gain of 0.00001 is noise that the next images
# will not repeat, and a step kept costs time at every prediction
MIN_GAIN = 0.001


def micro_iou(items: Sequence[tuple[np.ndarray, np.ndarray]], settings: dict) -> float:
    """The IoU of all pixels of (probabilities, true mask) items, post-processed by settings."""
    counts = [pixel_counts(postprocess(p, settings).numpy(), true) for p, true in items]
    return ratios(*(sum(c[k] for c in counts) for k in ("tp", "fp", "fn")))["iou"]


def true_component_shares(truths: Sequence[np.ndarray]) -> np.ndarray:
    """The size of every component of the true masks, as a share of its image's pixels."""
    sizes = [component_sizes(component_labels(tf.constant(t))).numpy()[1:] / t.size for t in truths]
    sizes = np.concatenate(sizes) if sizes else np.zeros(0)
    return sizes[sizes > 0]


def size_candidates(truths: Sequence[np.ndarray]) -> list[float]:
    """min_size candidates: half of each SIZE_QUANTILES quantile of the true masks' component sizes."""
    shares = true_component_shares(truths)
    return sorted({float(np.quantile(shares, q)) / 2 for q in SIZE_QUANTILES}) if len(shares) else []


def best_candidate(iou: Callable[[dict], float], settings: dict, key: str, candidates: Sequence) -> tuple:
    """(candidate value of settings[key] with the highest IoU, its IoU); ties go to the earlier candidate."""
    scored = [(iou({**settings, key: value}), -i, value) for i, value in enumerate(candidates)]
    best, _, value = max(scored)
    return value, best


def choose_steps(iou: Callable[[dict], float], settings: dict, steps: list[tuple[str, Sequence]]) -> tuple:
    """(settings, rows): each step's best candidate kept only when it raises iou by MIN_GAIN or more above that of
    the steps kept before it; a row a step: its best value, IoU without and with it, kept or not."""
    settings, current, rows = dict(settings), iou(settings), []
    for key, candidates in steps:
        if not candidates:
            continue
        value, score = best_candidate(iou, settings, key, candidates)
        kept = bool(score >= current + MIN_GAIN)
        rows.append({"step": key, "value": value, "iou_before": current, "iou_after": score, "kept": kept})
        if kept:
            settings[key], current = value, score
    return settings, rows


def choose_postprocessing(
    items: Sequence[tuple[np.ndarray, np.ndarray]], names: Optional[list[str]] = None
) -> tuple[dict, list[dict]]:
    """Settings chosen step by step on (probabilities, true mask) items by the micro IoU, and a row a step
    (choose_steps). With several classes (names), on (predicted, true) label masks, each foreground class's steps
    chosen by its own micro IoU, into settings["classes"][name], its rows naming it."""
    if not names:
        steps = [("threshold", THRESHOLDS), ("min_size", size_candidates([t for _, t in items])),
                 ("fill_holes", [True]), ("largest", [True])]  # fmt: skip
        return choose_steps(lambda settings: micro_iou(items, settings), NO_POSTPROCESSING, steps)
    chosen, rows = {}, []
    for k, name in enumerate(names[1:], 1):
        steps = [("min_size", size_candidates([t == k for _, t in items])), ("fill_holes", [True]),
                 ("largest", [True])]  # fmt: skip
        none = {key: NO_POSTPROCESSING[key] for key, _ in steps}
        chosen[name], class_rows = choose_steps(partial(class_micro_iou, items, names, k), none, steps)
        rows += [{"class": name, **row} for row in class_rows]
    return {"classes": chosen}, rows


def class_micro_iou(items: Sequence[tuple[np.ndarray, np.ndarray]], names: list[str], k: int, settings: dict) -> float:
    """Class k's IoU of all pixels of (predicted, true) label-mask items, class k post-processed by settings."""
    per_class = {"classes": {names[k]: settings}}
    counts = [class_pixel_counts(postprocess_labels(p, per_class, names), true, len(names))[k] for p, true in items]
    return ratios(*(sum(c[key] for c in counts) for key in ("tp", "fp", "fn")))["iou"]
