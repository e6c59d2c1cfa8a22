"""Patches of large images: copies rescaled by --scale kept uncompressed as .npy arrays in DATA/cache/scale<S>/,
each mask's foreground locations beside it, and random crops of them (a share centred on foreground, nnU-Net's
way) of which only the crop's rows are read, however large the image."""

import functools
import math
import os
from pathlib import Path
from typing import BinaryIO, NamedTuple, Optional

from segtf.dataset.classes import IGNORED, read_classes
from segtf.dataset.disk_cache import CACHE_FOLDER, CopyTask, resized, write_copies
from segtf.files import write_array

import cv2
import numpy as np
import pandas as pd

# Foreground locations kept a mask to centre crops on: nnU-Net's 10,000, or 1% of them if that is more
FOREGROUND_LOCATIONS = 10_000


class Patches(NamedTuple):
    """Training on size x size crops of the images rescaled by scale, foreground_share of them centred on a
    foreground pixel (nnU-Net oversamples foreground so: small structures would be rare in random crops)."""

    size: int
    scale: float = 1.0
    foreground_share: float = 0.33


def foreground_file(mask_copy: str) -> Path:
    """Where a mask's patch source keeps its foreground locations: beside it, ending .foreground (no copy does)."""
    return Path(mask_copy).with_suffix(".foreground")


def foreground_locations(mask: np.ndarray, labels: bool = False) -> np.ndarray:
    """(row, column) of the foreground pixels of a 2-D mask (labels: of any class but the background, ignored pixels
    not), int32: all of them up to FOREGROUND_LOCATIONS, else a uniform sample of that many or of 1% of them, the
    more (nnU-Net's rule), the same for the same mask."""
    flat = np.flatnonzero((mask > 0) & (mask != IGNORED) if labels else mask)
    keep = max(FOREGROUND_LOCATIONS, math.ceil(len(flat) / 100))
    if len(flat) > keep:
        flat = np.random.default_rng(0).choice(flat, keep, replace=False)
    return np.stack(np.unravel_index(flat, mask.shape), axis=1).astype(np.int32)


def write_patch_source(path: Path, pixels: np.ndarray, is_mask: bool, made_from: Path, labels: bool = False) -> None:
    """A copy that crops are read from (read_crop): a .npy array, RGB or one channel. A mask's
    foreground locations are written before it, so that a mask found up to date has them."""
    if is_mask:
        write_array(foreground_file(str(path)), foreground_locations(pixels, labels), made_from)
        pixels = pixels[..., None]
    else:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    write_array(path, pixels, made_from)


def write_patch_copy(task: CopyTask, scale: float, labels: bool = False) -> None:
    source, target, is_mask = task
    write_patch_source(Path(target), resized(source, is_mask, scale=scale), is_mask, Path(source), labels)


def patch_folder(data_root: Path, scale: float) -> Path:
    return data_root / CACHE_FOLDER / f"scale{scale:g}"


def patch_sources(table: pd.DataFrame, csv_path: Path, scale: float) -> pd.DataFrame:
    """Point the table at .npy patch sources rescaled by scale, writing those missing or not made from their
    source as it is now (a mask's with its foreground locations)."""
    data_root = csv_path.parent.parent

    def outputs(target: str, is_mask: bool) -> list[Path]:
        return [Path(target), foreground_file(target)] if is_mask else [Path(target)]

    write = functools.partial(write_patch_copy, scale=scale, labels=read_classes(data_root) is not None)
    return write_copies(table, data_root, patch_folder(data_root, scale), ".npy", write, outputs)


def pad_to_patch(pixels: np.ndarray, size: int) -> np.ndarray:
    """pixels grown with zeros, evenly on both sides, to at least size x size."""
    rows, columns = max(0, size - pixels.shape[0]), max(0, size - pixels.shape[1])
    if not rows and not columns:  # np.pad would copy it
        return pixels
    return np.pad(pixels, ((rows // 2, rows - rows // 2), (columns // 2, columns - columns // 2), (0, 0)))


def crop_corner(
    shape: tuple[int, int],
    locations: np.ndarray,
    size: int,
    foreground_share: float,
    rng: Optional[np.random.Generator],
) -> tuple[int, int]:
    """(top, left) of a size x size crop of an image of shape (height, width): with probability foreground_share
    centred on one of the foreground locations drawn uniformly (the crop moved inside the image still holds
    it), else anywhere; the centre crop without rng. An axis shorter than size is taken whole."""
    last_top, last_left = max(0, shape[0] - size), max(0, shape[1] - size)
    if rng is None:
        return last_top // 2, last_left // 2
    if rng.random() < foreground_share and len(locations):
        row, column = locations[rng.integers(len(locations))]
        return min(max(int(row) - size // 2, 0), last_top), min(max(int(column) - size // 2, 0), last_left)
    return int(rng.integers(last_top + 1)), int(rng.integers(last_left + 1))


def npy_layout(file: BinaryIO) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and offset of the data of the .npy array (C order, as np.save writes it) in an open file."""
    version = np.lib.format.read_magic(file)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(file)
    return shape, dtype, file.tell()


def read_rows(file: BinaryIO, layout: tuple[tuple[int, ...], np.dtype, int], top: int, count: int) -> np.ndarray:
    """Rows top to top + count (fewer at the bottom edge) of the .npy array of this layout (npy_layout) in an open
    file, and no more of it."""
    shape, dtype, offset = layout
    row_bytes = math.prod(shape[1:]) * dtype.itemsize
    rows = min(count, shape[0] - top)
    # one pread, which releases the GIL; a memory map of each file measured no faster in tf.data's threads
    data = os.pread(file.fileno(), rows * row_bytes, offset + top * row_bytes)
    return np.frombuffer(data, dtype).reshape(rows, *shape[1:])


def read_crop(
    image_path: str, mask_path: str, patches: Patches, rng: Optional[np.random.Generator]
) -> tuple[np.ndarray, np.ndarray]:
    """One patches.size crop of a sample's patch sources, image and mask alike (see crop_corner), padded with
    zeros where they are smaller. Only the crop's rows are read, so that its cost does not grow with the
    image's height."""
    size = patches.size
    with open(image_path, "rb") as image_file, open(mask_path, "rb") as mask_file:
        files = image_file, mask_file
        layouts = [npy_layout(file) for file in files]
        locations = np.load(foreground_file(mask_path))
        top, left = crop_corner(layouts[1][0][:2], locations, size, patches.foreground_share, rng)
        image, mask = (read_rows(f, layout, top, size)[:, left : left + size] for f, layout in zip(files, layouts))
    return pad_to_patch(np.array(image), size), pad_to_patch(np.array(mask), size)
