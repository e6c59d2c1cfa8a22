"""Pictures for people to look at: masks drawn over photos, comparison rows, the augmentation
grid and training curves. Arrays are RGB uint8, as the loader and predict.py hold them."""

from pathlib import Path
from typing import Iterable

from segtf.checked import Source, read_table
from segtf.files import write_image

import cv2
import numpy as np
import pandas as pd

COMPARISON_ROWS = 8  # images in predict.py's comparison.png
COMPARISON_SIDE = 192  # pixels of each tile there
PALETTE = [(0, 255, 0), (255, 64, 64), (64, 160, 255), (255, 220, 0), (255, 0, 255), (0, 255, 255)]  # class 1 first


def save_picture(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB array in the format of path's suffix (OpenCV writes BGR)."""
    write_image(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def overlay(image: np.ndarray, mask: np.ndarray, classes: int = 1) -> np.ndarray:
    """The image with the mask tinted green and its edge drawn; with several classes, mask holds class indices and
    each foreground class is tinted in its PALETTE colour (ignored pixels are not)."""
    labels = (mask > 0).astype(np.uint8) if classes == 1 else mask.astype(np.uint8)
    tinted = image.copy()
    for k in range(1, max(classes, 2)):
        inside = (labels == k).astype(np.uint8)
        colour = PALETTE[(k - 1) % len(PALETTE)]
        tinted[inside > 0] = (0.55 * image[inside > 0] + 0.45 * np.array(colour)).astype(np.uint8)
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        tinted = cv2.drawContours(tinted, contours, -1, colour, 1)
    return tinted


def legend(image: np.ndarray, names: list[str]) -> np.ndarray:
    """The image with each foreground class's name written in its overlay colour, top left."""
    drawn = image.copy()
    for k, name in enumerate(names[1:], 1):
        colour = PALETTE[(k - 1) % len(PALETTE)]
        cv2.putText(drawn, name, (4, 14 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(drawn, name, (4, 14 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return drawn


def fit_into(image: np.ndarray, side: int) -> np.ndarray:
    """Scale to fit a side x side square, centred on black."""
    scale = side / max(image.shape[:2])
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((side, side, 3), np.uint8)
    top, left = (side - resized.shape[0]) // 2, (side - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas


def comparison_rows(
    samples: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], side: int, classes: int = 1
) -> np.ndarray:
    """One row per (photo, true mask, predicted mask): the photo, then each mask drawn over it (overlay),
    each tile fitted into a side x side square. Shape (samples, side, 3 * side, 3)."""
    return np.stack(
        [
            np.hstack(
                [fit_into(tile, side) for tile in (photo, *(overlay(photo, m, classes) for m in (true, predicted)))]
            )
            for photo, true, predicted in samples
        ]
    )


def save_comparison(samples: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, classes: int = 1) -> None:
    """comparison_rows stacked into one picture."""
    save_picture(path, np.vstack(comparison_rows(samples, COMPARISON_SIDE, classes)))


def save_grid(
    images: np.ndarray, masks: np.ndarray, path: Path, classes: int = 1, columns: int = 4, tile: int = 160
) -> None:
    """Samples beside their overlays (of binary or label masks, see overlay), `columns` pairs a row, each at most
    `tile` pixels wide: the augmentation grid of dataloader.py."""
    side = min(tile, images.shape[1])
    images = [cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA) for image in images]
    masks = [cv2.resize(mask, (side, side), interpolation=cv2.INTER_NEAREST) for mask in masks]
    tiles = [np.hstack([image, overlay(image, mask, classes)]) for image, mask in zip(images, masks)]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    save_picture(path, np.vstack(rows))


def plot_history(history_csv: Path, png: Path) -> None:
    """Loss, IoU and F1 per epoch, train and valid, from a history.csv of train.py."""
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    source = Source(history_csv, "give a history.csv that train.py wrote")
    history = read_table(source, {"epoch": "whole", "loss": "number"})
    # runs before dataset-level metrics logged segmentation_models' per-batch means under these names
    history = history.rename(columns=lambda c: c.replace("iou_score", "iou").replace("f1-score", "f1"))
    for metric in ("iou", "f1"):
        if not pd.api.types.is_numeric_dtype(history.get(metric, pd.Series(dtype=object))):
            raise source.fault(f"the column {metric} is missing or holds other values than numbers")
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for axis, (metric, title) in zip(axes, [("loss", "loss (Dice + focal)"), ("iou", "IoU"), ("f1", "F1")]):
        axis.plot(history.epoch + 1, history[metric], label="train")
        if f"val_{metric}" in history:  # patch training validates without a loss
            axis.plot(history.epoch + 1, history[f"val_{metric}"], label="valid")
        axis.set(title=title, xlabel="epoch")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=90)
    plt.close(figure)
