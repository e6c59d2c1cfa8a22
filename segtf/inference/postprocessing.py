"""Post-processing of a probability map into a mask (its choice on out-of-fold predictions is
evaluation/postprocessing_choice.py).

The steps, in the order they apply: the threshold; removing the connected components (8-connected) smaller than
min_size, a share of the image's pixels; filling holes (background not connected to the image's border); keeping
only the largest component. With several classes, the steps but the threshold apply to each foreground class of the
label mask in turn, with settings of its own: removed pixels become background, and only background fills a hole.
In TensorFlow, so that predict.py and the SavedModel run the same graph.
"""

from pathlib import Path
from typing import Optional, Sequence

from segtf.checked import Source, boolean, child, fields, load_json, number

import numpy as np
import tensorflow as tf

NO_POSTPROCESSING = {"threshold": 0.5, "min_size": 0.0, "fill_holes": False, "largest": False}
CLASS_STEPS = ("min_size", "fill_holes", "largest")  # with several classes, the steps each class has settings for
RECORD_KEYS = ("steps", "pairs", "date")  # what predict.py --cv records beside the settings of postprocessing.json


def check_steps(data: object, source: Source, key: str, keys: Sequence[str]) -> dict:
    """Settings of the steps of keys, each optional (a missing one: none), checked."""
    values = fields(data, (), source, key, optional=keys)
    checked = {}
    for name, value in values.items():
        where = child(key, name)
        if name == "threshold":
            checked[name] = float(number(value, source, where, 0.0, 1.0, inside=True))
        elif name == "min_size":  # a share of the image's pixels
            checked[name] = float(number(value, source, where, 0.0, 1.0))
        else:
            checked[name] = boolean(value, source, where)
    return checked


def read_postprocessing(path: Path, names: Optional[Sequence[str]]) -> dict:
    """The settings of a postprocessing.json (predict.py --cv writes it) for models of the classes names (None: one
    class), checked; UserError naming the file and the key at fault, or the classes it was chosen for."""
    source = Source(path, "predict.py --cv writes it anew, or give --postprocessing none")
    settings = fields(load_json(source), ("settings",), source, "", optional=RECORD_KEYS)["settings"]
    classes = settings.get("classes") if isinstance(settings, dict) else None
    chosen_for = sorted(classes) if isinstance(classes, dict) else []
    if isinstance(settings, dict) and chosen_for != sorted(names[1:] if names else []):
        chosen = f"the classes {', '.join(chosen_for)}" if chosen_for else "one class"
        raise source.fault(f"chosen for {chosen}, not for these models")
    if not names:
        return {**NO_POSTPROCESSING, **check_steps(settings, source, "settings", tuple(NO_POSTPROCESSING))}
    fields(settings, ("classes",), source, "settings")
    per_class = {name: check_steps(classes[name], source, f"settings.classes.{name}", CLASS_STEPS) for name in classes}
    return {**NO_POSTPROCESSING, "classes": per_class}


def neighbourhood_max(labels: tf.Tensor) -> tf.Tensor:
    """The largest value of each pixel's 3 x 3 neighbourhood, of values of at least 0. Rows then columns, by
    shifted maxima: max_pool2d has no fast kernel for int32 on the CPU (ten times slower than this)."""
    padded = tf.pad(labels, [[1, 1], [1, 1]])
    rows = tf.maximum(tf.maximum(padded[:-2], padded[1:-1]), padded[2:])
    return tf.maximum(tf.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def component_labels(mask: tf.Tensor) -> tf.Tensor:
    """int32 H x W: 0 off the mask; on each 8-connected component of the mask, 1 + the largest flat index of its
    pixels. Each pass takes the largest label among a pixel's neighbours, then the label of the pixel that label
    names (pointer jumping), so that long components need a few dozen passes, not their length."""
    shape = tf.shape(mask)
    labels = tf.where(mask, tf.reshape(tf.range(1, shape[0] * shape[1] + 1), shape), 0)

    def spread(labels: tf.Tensor) -> tf.Tensor:
        grown = neighbourhood_max(labels)
        jumped = tf.gather(tf.reshape(grown, [-1]), tf.maximum(grown, 1) - 1)
        return tf.where(mask, tf.maximum(grown, jumped), 0)

    def changing(labels: tf.Tensor, previous: tf.Tensor) -> tf.Tensor:
        return tf.reduce_any(labels != previous)

    first = spread(labels)
    labels, _ = tf.while_loop(changing, lambda new, old: (spread(new), new), (first, labels))
    return labels


def component_sizes(labels: tf.Tensor) -> tf.Tensor:
    """Pixels of each label of component_labels, indexed by label (0: none)."""
    counts = tf.math.bincount(tf.reshape(labels, [-1]), minlength=tf.size(labels) + 1)
    return tf.tensor_scatter_nd_update(counts, [[0]], [0])


def remove_small(mask: tf.Tensor, min_pixels: tf.Tensor) -> tf.Tensor:
    labels = component_labels(mask)
    return mask & (tf.gather(component_sizes(labels), labels) >= tf.cast(min_pixels, tf.int32))


def fill_holes(mask: tf.Tensor) -> tf.Tensor:
    """The mask with every background component that does not touch the image's border made mask."""
    labels = component_labels(~mask)
    border = tf.concat([labels[0], labels[-1], labels[:, 0], labels[:, -1]], 0)
    touches = tf.scatter_nd(border[:, None], tf.ones_like(border), [tf.size(labels) + 1]) > 0
    return mask | ~tf.gather(touches, labels)


def keep_largest(mask: tf.Tensor) -> tf.Tensor:
    labels = component_labels(mask)
    return mask & (labels == tf.cast(tf.argmax(component_sizes(labels)), tf.int32))


@tf.function(
    input_signature=[
        tf.TensorSpec([None, None], tf.float32, name="probabilities"),
        tf.TensorSpec([], tf.float32, name="threshold"),
        tf.TensorSpec([], tf.float32, name="min_size"),
        tf.TensorSpec([], tf.bool, name="fill_holes"),
        tf.TensorSpec([], tf.bool, name="largest"),
    ]
)
def postprocess_graph(probabilities, threshold, min_size, fill, largest) -> tf.Tensor:
    """The steps on one H x W probability map; min_size 0 and False leave a step out."""
    return clean(probabilities > threshold, min_size, fill, largest)


@tf.function(
    input_signature=[
        tf.TensorSpec([None, None], tf.int32, name="labels"),
        tf.TensorSpec([None], tf.float32, name="min_sizes"),
        tf.TensorSpec([None], tf.bool, name="fills"),
        tf.TensorSpec([None], tf.bool, name="largests"),
    ]
)
def postprocess_labels_graph(labels, min_sizes, fills, largests) -> tf.Tensor:
    """The steps after the threshold on each foreground class k of one H x W label mask, by the (k - 1)th value
    of each list."""
    for k in tf.range(1, tf.size(min_sizes) + 1):
        mask = labels == k
        kept = clean(mask, min_sizes[k - 1], fills[k - 1], largests[k - 1])
        labels = tf.where(mask & ~kept, 0, labels)
        labels = tf.where(kept & (labels == 0), k, labels)
    return labels


def clean(mask: tf.Tensor, min_size: tf.Tensor, fill: tf.Tensor, largest: tf.Tensor) -> tf.Tensor:
    """The steps after the threshold on one H x W boolean mask."""
    min_pixels = tf.math.ceil(min_size * tf.cast(tf.size(mask), tf.float32))
    mask = tf.cond(min_pixels > 1, lambda: remove_small(mask, min_pixels), lambda: mask)
    mask = tf.cond(fill, lambda: fill_holes(mask), lambda: mask)
    return tf.cond(largest, lambda: keep_largest(mask), lambda: mask)


def graph_arguments(settings: dict) -> tuple[float, float, bool, bool]:
    """settings (keys of NO_POSTPROCESSING, the missing ones theirs) as postprocess_graph takes them after the map."""
    settings = {**NO_POSTPROCESSING, **settings}
    return (float(settings["threshold"]), float(settings["min_size"]), bool(settings["fill_holes"]),
            bool(settings["largest"]))  # fmt: skip


def postprocess(probabilities, settings: dict) -> tf.Tensor:
    """H x W boolean mask of H x W probabilities (float in [0, 1]) by settings (keys of NO_POSTPROCESSING)."""
    return postprocess_graph(tf.cast(probabilities, tf.float32), *graph_arguments(settings))


def class_graph_arguments(settings: dict, names: list[str]) -> tuple[list[float], list[bool], list[bool]]:
    """settings["classes"] (each foreground class's name: its settings, the missing ones none) as
    postprocess_labels_graph takes them after the label mask."""
    per_class = [graph_arguments(settings.get("classes", {}).get(name, {})) for name in names[1:]]
    return [s[1] for s in per_class], [s[2] for s in per_class], [s[3] for s in per_class]


def postprocess_labels(labels, settings: dict, names: list[str]) -> np.ndarray:
    """H x W label mask (uint8) post-processed class by class by settings["classes"]."""
    cleaned = postprocess_labels_graph(tf.cast(labels, tf.int32), *class_graph_arguments(settings, names))
    return cleaned.numpy().astype(np.uint8)
