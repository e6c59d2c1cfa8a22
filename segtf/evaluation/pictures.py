"""Pictures for people to look at: masks drawn over photos, comparison rows, the augmentation
grid and training curves. Arrays are RGB uint8, as the loader and predict.py hold them."""

from pathlib import Path
from typing import Iterable, Optional, Sequence

from segtf.checked import Source, check_columns, read_table
from segtf.files import write_image

import cv2
import numpy as np

COMPARISON_ROWS = 8  # images in predict.py's comparison.png
COMPARISON_SIDE = 256  # pixels of each tile there, at most
PALETTE = [(0, 255, 0), (255, 64, 64), (64, 160, 255), (255, 220, 0), (255, 0, 255), (0, 255, 255)]  # class 1 first


def save_picture(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB array in the format of path's suffix (OpenCV writes BGR)."""
    write_image(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def class_color(k: int, colors: Optional[Sequence] = None) -> tuple:
    """The RGB that class k (1 or more) is drawn in: its colour in the user's masks (colors, the background first)
    where they had colours, else PALETTE's."""
    return tuple(colors[k]) if colors else PALETTE[(k - 1) % len(PALETTE)]


def label_palette(names: Sequence[str], colors: Optional[Sequence] = None) -> list[tuple]:
    """The RGB of each class of a label mask, the background first: the user's colours, or black then PALETTE's."""
    return [tuple(colors[0]) if colors else (0, 0, 0), *(class_color(k, colors) for k in range(1, len(names)))]


def overlay(
    image: np.ndarray, mask: np.ndarray, names: Optional[Sequence[str]] = None, colors: Optional[Sequence] = None
) -> np.ndarray:
    """The image with the mask tinted green and its edge drawn; with several classes (names), mask holds class
    indices and each foreground class is tinted in its colour (class_color; ignored pixels are not)."""
    labels = mask.astype(np.uint8) if names else (mask > 0).astype(np.uint8)
    tinted = image.copy()
    for k in range(1, max(len(names or ()), 2)):
        inside = (labels == k).astype(np.uint8)
        colour = class_color(k, colors)
        tinted[inside > 0] = (0.55 * image[inside > 0] + 0.45 * np.array(colour)).astype(np.uint8)
        contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        tinted = cv2.drawContours(tinted, contours, -1, colour, 1)
    return tinted


def write_text(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple = (255, 255, 255)) -> None:
    """text drawn into image at origin (its baseline's left end), outlined in black so that it reads on a photo."""
    for thickness, ink in ((3, (0, 0, 0)), (1, colour)):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, ink, thickness, cv2.LINE_AA)


def legend(image: np.ndarray, names: Sequence[str], colors: Optional[Sequence] = None) -> np.ndarray:
    """The image with each foreground class's name written in its overlay colour, top left."""
    drawn = image.copy()
    for k, name in enumerate(names[1:], 1):
        write_text(drawn, name, (4, 14 * k), class_color(k, colors))
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
    samples: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    side: int,
    names: Optional[Sequence[str]] = None,
    colors: Optional[Sequence] = None,
) -> np.ndarray:
    """One row per (photo, true mask, predicted mask): the photo, then each mask drawn over it (overlay),
    each tile fitted into a side x side square. Shape (samples, side, 3 * side, 3)."""
    rows = []
    for photo, true, predicted in samples:
        tiles = (photo, overlay(photo, true, names, colors), overlay(photo, predicted, names, colors))
        rows.append(np.hstack([fit_into(tile, side) for tile in tiles]))
    return np.stack(rows)


def titled(
    rows: np.ndarray, captions: Sequence[str], names: Optional[Sequence[str]], colors: Optional[Sequence]
) -> np.ndarray:
    """comparison_rows stacked under a strip naming the columns (and, with several classes, each class in its
    colour), each row's caption written on its photo."""
    rows = rows.copy()
    side = rows.shape[1]
    for row, caption in zip(rows, captions):
        write_text(row, caption, (4, side - 8))
    header = np.full((24 + 16 * len(names[1:] if names else ()), rows.shape[2], 3), 32, np.uint8)
    for column, title in enumerate(("photo", "true mask", "prediction")):
        write_text(header, title, (column * side + 6, 17))
    for k, name in enumerate(names[1:] if names else (), 1):
        write_text(header, name, (6, 17 + 16 * k), class_color(k, colors))
    return np.vstack([header, *rows])


def save_comparison(
    samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    path: Path,
    captions: Sequence[str],
    names: Optional[Sequence[str]] = None,
    colors: Optional[Sequence] = None,
) -> None:
    """comparison_rows of the samples, titled (see titled), each row's caption (its image's name and score) on it;
    tiles of COMPARISON_SIDE pixels, or of the largest photo's side when smaller."""
    side = min(COMPARISON_SIDE, max(max(photo.shape[:2]) for photo, _, _ in samples))
    save_picture(path, titled(comparison_rows(samples, side, names, colors), captions, names, colors))


def save_grid(
    images: np.ndarray,
    masks: np.ndarray,
    path: Path,
    names: Optional[Sequence[str]] = None,
    colors: Optional[Sequence] = None,
    columns: int = 4,
    tile: int = 160,
) -> None:
    """Samples beside their overlays (of binary or label masks, see overlay), `columns` pairs a row, each at most
    `tile` pixels wide: the augmentation grid of dataloader.py."""
    side = min(tile, images.shape[1])
    images = [cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA) for image in images]
    masks = [cv2.resize(mask, (side, side), interpolation=cv2.INTER_NEAREST) for mask in masks]
    tiles = [np.hstack([image, overlay(image, mask, names, colors)]) for image, mask in zip(images, masks)]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    save_picture(path, np.vstack(rows))


def plot_history(history_csv: Path, png: Path, loss_title: str = "loss") -> None:
    """Loss (titled loss_title), IoU and F1 per epoch, train and valid, from a history.csv of train.py; each epoch
    a marker, so that a run of one epoch shows its point."""
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    source = Source(history_csv, "give a history.csv that train.py wrote")
    history = read_table(source, {"epoch": "whole", "loss": "number"})
    # runs before dataset-level metrics logged segmentation_models' per-batch means under these names
    history = history.rename(columns=lambda c: c.replace("iou_score", "iou").replace("f1-score", "f1"))
    check_columns(history, source, {"iou": "number", "f1": "number"})
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for axis, (metric, title) in zip(axes, [("loss", loss_title), ("iou", "IoU"), ("f1", "F1")]):
        axis.plot(history.epoch + 1, history[metric], marker="o", markersize=3, label="train")
        if f"val_{metric}" in history:  # patch training validates without a loss
            axis.plot(history.epoch + 1, history[f"val_{metric}"], marker="o", markersize=3, label="valid")
        axis.set(title=title, xlabel="epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, not 1.25 of one
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=90)
    plt.close(figure)
