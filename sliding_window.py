"""Predict an image larger than the model's input: P x P windows slid over it with overlap and blended with
Gaussian weights (nnU-Net's sliding-window inference), one band of window rows at a time so that only the output
is image-sized; and flip test-time augmentation, which composes with it.

predict_batch is any function from a batch of windows (N, P, P, 3), uint8 or float, to probabilities
(N, P, P, 1): a Keras model behind its input scaling in predict.py, a plain function of the pixels in tests.
"""

from typing import Callable, Optional

import cv2
import numpy as np

from utils import UserError

PredictBatch = Callable[[np.ndarray], np.ndarray]

SIGMA_SCALE = 1 / 8  # nnU-Net's sigma, P / 8: a window's edge weighs exp(-8) of its centre, a corner exp(-16)
# MONAI's floor: every pixel of a window counts a little, so no sum of weights is 0 or far below float32's range
WEIGHT_FLOOR = 1e-3
TTA_MODES = (None, "flip")


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
    """predict_batch itself for tta None, flip_tta(predict_batch) for "flip"."""
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
    sums: np.ndarray,
    weight_sums: np.ndarray,
    batch_size: int,
) -> None:
    """Predict the windows of one band (P rows of the image, padded), batch_size at a time, and add each
    weighted prediction and its weights to the band's sums."""
    patch_size = weights.shape[0]
    for first in range(0, len(columns), batch_size):
        batch = columns[first : first + batch_size]
        predictions = predict_batch(np.stack([band[:, x : x + patch_size] for x in batch]))
        for x, prediction in zip(batch, predictions):
            sums[:, x : x + patch_size] += weights * prediction[..., 0]
            weight_sums[:, x : x + patch_size] += weights


def predict_sliding(
    predict_batch: PredictBatch,
    image: np.ndarray,
    patch_size: int,
    overlap: float = 0.5,
    batch_size: int = 8,
    tta: Optional[str] = None,
) -> np.ndarray:
    """H x W float32 probabilities of an H x W x C image by P x P windows, blended with gaussian_weights.
    Band by band: the sums of a band's P rows are all that is kept besides the output; the rows above the next
    band's first are final, so they are divided into the output and the sums move up to the next band."""
    check_window_args(image, patch_size, batch_size)
    predict_batch = with_tta(predict_batch, tta)
    height, width = image.shape[:2]
    weights, columns = gaussian_weights(patch_size), window_starts(width, patch_size, overlap)
    sums = np.zeros((patch_size, max(width, patch_size)), np.float32)
    weight_sums = np.zeros_like(sums)
    output = np.empty((height, width), np.float32)
    rows = window_starts(height, patch_size, overlap)
    # after the last band comes none: all of its rows are final
    for top, next_top in zip(rows, rows[1:] + [rows[-1] + patch_size]):
        band = pad_to(image[top : top + patch_size], patch_size, max(width, patch_size))
        add_band(predict_batch, band, columns, weights, sums, weight_sums, batch_size)
        final = min(next_top, height) - top  # rows no later band touches; below height: padding, dropped
        output[top : top + final] = sums[:final, :width] / weight_sums[:final, :width]
        shift_up(sums, next_top - top)
        shift_up(weight_sums, next_top - top)
    return output


def shift_up(sums: np.ndarray, rows: int) -> None:
    """Move the sums up by rows (the distance to the next band's top) and zero the rows that come free."""
    sums[: len(sums) - rows] = sums[rows:]  # numpy copies overlapping slices safely
    sums[len(sums) - rows :] = 0


def window_predictor(model) -> PredictBatch:
    """A Keras model as predict_sliding calls it: uint8 windows in, probabilities out."""

    def predict_batch(windows: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(windows.astype(np.float32) / 255.0))

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
    """H x W probabilities of an H x W image predicted by sliding windows on the image rescaled by scale (as
    patch training saw it), then brought back to H x W."""
    height, width = image.shape[:2]
    if scale != 1:
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, target, interpolation=cv2.INTER_AREA)  # as the training copies were made
    probabilities = predict_sliding(predict_batch, image, patch_size, overlap, batch_size, tta)
    if scale != 1:
        probabilities = cv2.resize(probabilities, (width, height), interpolation=cv2.INTER_LINEAR)
    return probabilities
