"""Predict an image larger than the model's input: P x P windows slid over it with overlap and blended with
Gaussian weights (nnU-Net's sliding-window inference), one band of window rows at a time so that only the output
is image-sized; and flip test-time augmentation, which composes with it.

predict_batch is any function from a batch of windows (N, P, P, 3), uint8 or float, to probabilities
(N, P, P, C): a Keras model behind its input scaling in predict.py, a plain function of the pixels in tests. The
probabilities come back H x W for one channel, H x W x C for several (a model of several classes).
"""

from typing import Callable, Optional

from segtf.dataset.input_scaling import to_model_input
from segtf.errors import UserError
from segtf.modeling.outputs import squeeze_channel

import numpy as np
import tensorflow as tf

PredictBatch = Callable[[np.ndarray], np.ndarray]

SIGMA_SCALE = 1 / 8  # nnU-Net's sigma, P / 8: a window's edge weighs exp(-8) of its centre, a corner exp(-16)
# MONAI's floor: every pixel of a window counts a little, so no sum of weights is 0 or far below float32's range
WEIGHT_FLOOR = 1e-3
TTA_MODES = (None, "none", "flip")  # "none" as --tta spells it
DEFAULT_OVERLAP = 0.5  # of a window's side, where the caller does not choose


def gaussian_weights(patch_size: int) -> np.ndarray:
    """P x P float32 importance weights: a Gaussian of sigma P/8, 1 at the centre, at least WEIGHT_FLOOR.
    Centred at (P - 1) / 2 (nnU-Net: P // 2) so that flipping a window leaves its weights unchanged."""
    distance = np.arange(patch_size) - (patch_size - 1) / 2
    profile = np.exp(-(distance**2) / (2 * (patch_size * SIGMA_SCALE) ** 2))
    weights = np.outer(profile, profile)
    return np.maximum(weights / weights.max(), WEIGHT_FLOOR).astype(np.float32)


def window_starts(length: int, patch_size: int, overlap: float = 0.5) -> list[int]:
    """Where the windows along one axis start: every P x (1 - overlap) pixels (rounded down, at least 1), and
    one last window flush with the far edge. An axis no longer than P has one window at 0 (padded)."""
    if not 0 <= overlap < 1:  # a negative overlap would leave gaps between windows
        raise UserError(f"overlap {overlap} must be at least 0 and below 1")
    step = max(1, int(round(patch_size * (1 - overlap), 6)))  # round first: 100 x (1 - 0.9) is 9.999999999999998
    return list(range(0, length - patch_size, step)) + [max(0, length - patch_size)]


def pad_to(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """pixels grown at the bottom and right to at least height x width by reflection: the model sees the image's
    own texture there, not a black frame ([0, 1] inputs have no neutral zero) that it never saw in training."""
    rows, columns = max(0, height - pixels.shape[0]), max(0, width - pixels.shape[1])
    if not rows and not columns:
        return pixels
    return np.pad(pixels, ((0, rows), (0, columns), (0, 0)), mode="reflect")


def flip_tta(predict_batch: PredictBatch) -> PredictBatch:
    """predict_batch averaged over the windows as they are, flipped left-right and flipped upside down, each
    prediction flipped back. Three calls, not one of 3N windows, so that the batch size stays the caller's."""

    def predict(windows: np.ndarray) -> np.ndarray:
        plain = predict_batch(windows)
        left_right = predict_batch(windows[:, :, ::-1])[:, :, ::-1]
        upside_down = predict_batch(windows[:, ::-1])[:, ::-1]
        return (plain + left_right + upside_down) / 3

    return predict


def with_tta(predict_batch: PredictBatch, tta: Optional[str]) -> PredictBatch:
    """predict_batch itself for tta None or "none", flip_tta(predict_batch) for "flip"."""
    if tta not in TTA_MODES:
        raise UserError(f"tta {tta!r}: expected one of {TTA_MODES}")
    return flip_tta(predict_batch) if tta == "flip" else predict_batch


def check_window_args(image: np.ndarray, patch_size: int, batch_size: int) -> None:
    if image.ndim != 3 or 0 in image.shape:
        raise UserError(f"an image of shape {image.shape}: expected height x width x channels")
    if patch_size < 1 or batch_size < 1:
        raise UserError(f"patch size {patch_size} and batch size {batch_size} must be at least 1")


def add_band(
    predict_batch: PredictBatch,
    band: np.ndarray,
    columns: list[int],
    weights: np.ndarray,
    sums: Optional[np.ndarray],
    weight_sums: np.ndarray,
    batch_size: int,
) -> np.ndarray:
    """Predict the windows of one band (P rows of the image, padded), batch_size at a time, and add each weighted
    prediction and its weights to the band's sums (P x W x C, made at the first prediction when None, which tells
    C, and returned) and weight sums (P x W x 1)."""
    patch_size = weights.shape[0]
    for first in range(0, len(columns), batch_size):
        batch = columns[first : first + batch_size]
        predictions = predict_batch(np.stack([band[:, x : x + patch_size] for x in batch]))
        if sums is None:
            sums = np.zeros((*weight_sums.shape[:2], predictions.shape[-1]), np.float32)
        for x, prediction in zip(batch, predictions):
            sums[:, x : x + patch_size] += weights[..., None] * prediction
            weight_sums[:, x : x + patch_size] += weights[..., None]
    return sums


def predict_sliding(
    predict_batch: PredictBatch,
    image: np.ndarray,
    patch_size: int,
    overlap: float = 0.5,
    batch_size: int = 8,
    tta: Optional[str] = None,
) -> np.ndarray:
    """H x W (x C) float32 probabilities of an H x W x 3 image by P x P windows, blended with gaussian_weights.
    Band by band: the sums of a band's P rows are all that is kept besides the output; the rows above the next
    band's first are final, so they are divided into the output and the sums move up to the next band."""
    check_window_args(image, patch_size, batch_size)
    predict_batch = with_tta(predict_batch, tta)
    height, width = image.shape[:2]
    weights, columns = gaussian_weights(patch_size), window_starts(width, patch_size, overlap)
    sums, weight_sums = None, np.zeros((patch_size, max(width, patch_size), 1), np.float32)
    output = None
    rows = window_starts(height, patch_size, overlap)
    # after the last band comes none: all of its rows are final
    for top, next_top in zip(rows, rows[1:] + [rows[-1] + patch_size]):
        band = pad_to(image[top : top + patch_size], patch_size, max(width, patch_size))
        sums = add_band(predict_batch, band, columns, weights, sums, weight_sums, batch_size)
        if output is None:
            output = np.empty((height, width, sums.shape[-1]), np.float32)
        final = min(next_top, height) - top  # rows no later band touches; below height: padding, dropped
        output[top : top + final] = sums[:final, :width] / weight_sums[:final, :width]
        shift_up(sums, next_top - top)
        shift_up(weight_sums, next_top - top)
    return squeeze_channel(output)


def shift_up(sums: np.ndarray, rows: int) -> None:
    """Move the sums up by rows (the distance to the next band's top) and zero the rows that come free."""
    sums[: len(sums) - rows] = sums[rows:]  # numpy copies overlapping slices safely
    sums[len(sums) - rows :] = 0


def window_predictor(model) -> PredictBatch:
    """A Keras model as predict_sliding calls it: uint8 windows in, probabilities out."""

    def predict_batch(windows: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(to_model_input(windows)))

    return predict_batch


def predict_scaled(
    predict_batch: PredictBatch,
    image: np.ndarray,
    scale: float,
    patch_size: int,
    overlap: float = 0.5,
    batch_size: int = 8,
    tta: Optional[str] = None,
) -> np.ndarray:
    """H x W (x C) probabilities of an H x W image predicted by sliding windows on the image rescaled by scale (as
    patch training saw it), then brought back to H x W. TensorFlow's resizing, so that the SavedModel's graph
    (predict_scaled_graph) gives the same."""
    if scale == 1:
        return predict_sliding(predict_batch, image, patch_size, overlap, batch_size, tta)
    probabilities = predict_sliding(predict_batch, rescale(image, scale).numpy(), patch_size, overlap, batch_size, tta)
    one = probabilities.ndim == 2
    resized = tf.image.resize(probabilities[..., None] if one else probabilities, image.shape[:2]).numpy()
    return squeeze_channel(resized)


def rescale(image, scale: float) -> tf.Tensor:
    """A uint8 H x W x C image with its sides times scale (rounded, at least 1), averaged over areas as the
    training copies were (cv2's INTER_AREA), back in uint8."""
    size = tf.maximum(1, tf.cast(tf.round(tf.cast(tf.shape(image)[:2], tf.float64) * scale), tf.int32))
    return tf.cast(tf.round(tf.image.resize(image, size, method="area")), tf.uint8)


def reflect_indices(length: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Indices 0..size-1 into an axis of length, reflected at its ends as np.pad's "reflect" does, however far."""
    period = tf.maximum(2 * (length - 1), 1)
    place = tf.math.floormod(tf.range(size), period)
    return tf.minimum(tf.where(place < length, place, period - place), length - 1)


def graph_window_starts(length: tf.Tensor, patch_size: int, overlap: float) -> tf.Tensor:
    """window_starts in TensorFlow, for an axis whose length is known only when the graph runs."""
    step = max(1, int(round(patch_size * (1 - overlap), 6)))
    last = tf.maximum(0, length - patch_size)
    return tf.concat([tf.range(0, last, step), [last]], 0)


def band_sums(predict: Callable, band: tf.Tensor, columns: tf.Tensor, weights: tf.Tensor, batch_size: int):
    """The weighted predictions and the weights of one band's windows, summed over a band of the padded width."""
    patch_size = weights.shape[0]
    width = tf.shape(band)[1]
    windows = tf.map_fn(lambda x: band[:, x : x + patch_size], columns, fn_output_signature=band.dtype)
    starts = tf.range(0, tf.size(columns), batch_size)
    predictions = tf.map_fn(
        lambda first: tf.pad(predict(windows[first : first + batch_size]), [[0, batch_size], [0, 0], [0, 0], [0, 0]])[
            :batch_size
        ],
        starts,
        fn_output_signature=tf.float32,
    )
    predictions = tf.reshape(predictions, [-1, patch_size, patch_size, predictions.shape[-1]])[: tf.size(columns)]

    def place(pair: tuple) -> tuple:
        x, prediction = pair
        padding = [[0, 0], [x, width - x - patch_size], [0, 0]]
        return tf.pad(weights[..., None] * prediction, padding), tf.pad(weights[..., None], padding)

    placed, placed_weights = tf.map_fn(place, (columns, predictions), fn_output_signature=(tf.float32, tf.float32))
    return tf.reduce_sum(placed, 0), tf.reduce_sum(placed_weights, 0)


def predict_sliding_graph(
    predict: Callable, image: tf.Tensor, patch_size: int, overlap: float = 0.5, batch_size: int = 8, channels: int = 1
) -> tf.Tensor:
    """predict_sliding in TensorFlow, for a SavedModel: H x W (x channels, when more than 1) probabilities of one
    H x W x 3 image, where predict maps windows (N, P, P, 3) of the image's dtype to probabilities (N, P, P,
    channels). The same windows, weights and padding, band by band: a band's sums are all that is held besides the
    output."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    padded_width = tf.maximum(width, patch_size)
    image = tf.gather(image, reflect_indices(width, padded_width), axis=1)
    weights = tf.constant(gaussian_weights(patch_size))
    rows, columns = graph_window_starts(height, patch_size, overlap), graph_window_starts(width, patch_size, overlap)
    next_rows = tf.concat([rows[1:], [rows[-1] + patch_size]], 0)
    finished = tf.TensorArray(tf.float32, size=tf.size(rows), infer_shape=False)
    sums = tf.zeros([patch_size, padded_width, channels])
    weight_sums = tf.zeros([patch_size, padded_width, 1])
    for i in tf.range(tf.size(rows)):
        top, next_top = rows[i], next_rows[i]
        band = tf.gather(image, reflect_indices(height, top + patch_size)[top:], axis=0)
        band_sum, band_weights = band_sums(predict, band, columns, weights, batch_size)
        sums, weight_sums = sums + band_sum, weight_sums + band_weights
        final = tf.minimum(next_top, height) - top
        finished = finished.write(i, sums[:final, :width] / weight_sums[:final, :width])
        shift, shape = next_top - top, sums.shape  # the loop needs the shape that concat loses
        sums = tf.ensure_shape(tf.concat([sums[shift:], tf.zeros([shift, padded_width, channels])], 0), shape)
        weight_shape = weight_sums.shape
        weight_sums = tf.concat([weight_sums[shift:], tf.zeros([shift, padded_width, 1])], 0)
        weight_sums = tf.ensure_shape(weight_sums, weight_shape)
    output = tf.reshape(finished.concat(), [height, width, channels])
    return squeeze_channel(output)


def predict_scaled_graph(
    predict: Callable,
    image: tf.Tensor,
    scale: float,
    patch_size: int,
    overlap: float = 0.5,
    batch_size: int = 8,
    channels: int = 1,
) -> tf.Tensor:
    """predict_scaled in TensorFlow: H x W (x channels) probabilities of one uint8 H x W x 3 image, where predict
    maps uint8 windows to probabilities."""
    windows = {"patch_size": patch_size, "overlap": overlap, "batch_size": batch_size, "channels": channels}
    if scale == 1:
        return predict_sliding_graph(predict, image, **windows)
    probabilities = predict_sliding_graph(predict, rescale(image, scale), **windows)
    resized = tf.image.resize(probabilities[..., None] if channels == 1 else probabilities, tf.shape(image)[:2])
    return squeeze_channel(resized)
