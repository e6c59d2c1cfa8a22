"""The input pipeline: CSVs of image/mask pairs to batches of (image, mask) for training.

    python dataloader.py --data_root DATA

prints one training batch's shapes, dtypes and value ranges, and saves imgs/augmentations.png.

Where the work goes: by default every image and mask is resized once to the training size and
kept as BMP in DATA/cache/<size>px/ (written on first use, in parallel). Each epoch then decodes
these small files with TensorFlow's own ops and runs the albumentations transform on them in a
`tf.numpy_function`, many samples at a time. File paths are shuffled, never decoded images, so
memory does not depend on the number of samples.

With cache_format "tfrecord" the resized samples are kept instead in TFRecord shard files
(DATA/cache/<size>px-tfrecord/<csv stem>/), the image as JPEG and the mask as PNG: about 14 times
smaller than the BMP copies, read as a few large files, and shardable by file over several workers.

With patches (--patch_size), the images are rescaled by --scale and kept uncompressed as .npy arrays in
DATA/cache/scale<S>/, with each mask's foreground locations. Each sample is then a crop, for which only
the crop's rows are read, however large the image.
"""

import argparse
import copy
import functools
import json
import math
import os
import random
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import BinaryIO, Callable, NamedTuple, Optional, Sequence

import keras2  # noqa: F401

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

from data_preparation import split_csv
from pictures import save_grid
from utils import (
    CSV_FOLDER,
    UserError,
    dataloader_args,
    exit_on_user_error,
    is_up_to_date,
    replacing,
    write_array,
    write_image,
    write_text,
)

CACHE_FOLDER = "cache"
CACHE_FORMATS = ("bmp", "tfrecord")
# On the nails at 384 px, quality 95 gives 42 KB an image and a mean error of 1.5 grey levels; 90 gives 29 KB
# and 1.7. 95 is already 14 times smaller than BMP, so the cache keeps the better images.
JPEG_QUALITY = 95
# Shard files: 1000 records make about 43 MB at 384 px, large enough to be read at the storage's speed, and
# 100,000 samples make 100 files, enough for each of up to 100 workers to read whole files of its own.
# Smaller sets still get up to 32 files (of at least 100 records), so that 8 or 16 workers shard by file
# instead of each reading every file to keep a share of its records.
SHARD_RECORDS = 1000
MIN_SHARD_RECORDS = 100
MIN_SHARD_FILES = 32
# Encoded records are small (about 43 KB at 384 px): 2048 of them buffer about 90 MB.
SHUFFLE_RECORDS = 2048
PARALLEL_FILES = 16  # shard files read at once in training
MANIFEST = "manifest.json"
# The keys of TF Model Garden's segmentation records
IMAGE_KEY = "image/encoded"
MASK_KEY = "image/segmentation/class/encoded"
RECORD_FEATURES = {key: tf.io.FixedLenFeature([], tf.string) for key in (IMAGE_KEY, MASK_KEY)}
# Foreground locations kept a mask to centre crops on: nnU-Net's 10,000, or 1% of them if that is more
FOREGROUND_LOCATIONS = 10_000


class RecordFile(NamedTuple):
    """A TFRecord shard file and its number of records."""

    path: Path
    records: int


def train_transform(size: int) -> A.Compose:
    """The seed's augmentations, in albumentations 2 names; geometric ones move image and mask alike."""
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(0.8, 1.2),
                rotate=(-30, 30),
                translate_percent=(-0.0625, 0.0625),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=0.5,
            ),
            A.GaussNoise(std_range=(0, math.sqrt(50) / 255), p=0.4),  # the seed's variance 0 to 50
            A.GaussianBlur(blur_limit=(3, 7), p=0.4),
            A.OneOf(
                [
                    A.HueSaturationValue(10, 15, 15),
                    A.CLAHE(clip_limit=2),
                    A.RandomBrightnessContrast(0.15, 0.3),
                ],
                p=0.3,
            ),
            A.Resize(size, size),
        ]
    )


def valid_transform(size: int) -> A.Compose:
    return A.Compose([A.Resize(size, size)])


def read_samples(csv_path: Path) -> pd.DataFrame:
    """A prepared CSV with absolute paths; UserError if the CSV or a listed file is missing."""
    if not csv_path.exists():
        raise UserError(
            f"{csv_path} does not exist: run data_preparation.py --data_root {csv_path.parent.parent} first"
        )
    table = pd.read_csv(csv_path, keep_default_na=False)
    if table.empty:
        raise UserError(f"{csv_path} lists no image/mask pairs")
    data_root = csv_path.parent.parent
    for column in ("image", "mask"):
        table[column] = [str(data_root / p) for p in table[column]]
    missing = [p for p in pd.concat([table.image, table["mask"]]) if not os.path.exists(p)]
    if missing:
        raise UserError(
            f"{csv_path} lists {len(missing)} missing files, first {missing[0]}: run data_preparation.py again"
        )
    return table


class Patches(NamedTuple):
    """Training on size x size crops of the images rescaled by scale, foreground_share of them centred on a
    foreground pixel (nnU-Net oversamples foreground so: small structures would be rare in random crops)."""

    size: int
    scale: float = 1.0
    foreground_share: float = 0.33


def resized(source: str, size: int, is_mask: bool, scale: Optional[float] = None) -> np.ndarray:
    """The image at source, size x size, or with scale its sides times scale; ValueError naming it when it
    does not decode."""
    image = cv2.imread(source, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{source} does not decode: run data_preparation.py again")
    height, width = image.shape[:2]
    target = (size, size) if scale is None else (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_NEAREST if is_mask else cv2.INTER_AREA  # nearest keeps masks binary
    return cv2.resize(image, target, interpolation=interpolation)


def cache_folder(data_root: Path, size: int, cache_format: str, scale: Optional[float] = None) -> Path:
    """DATA/cache/<size>px/ for the BMP copies (scale<S>/ for the patch sources rescaled by S),
    DATA/cache/<size>px-tfrecord/ for the TFRecord shards."""
    if scale is not None:
        return data_root / CACHE_FOLDER / f"scale{scale:g}"
    return data_root / CACHE_FOLDER / (f"{size}px" if cache_format == "bmp" else f"{size}px-tfrecord")


def foreground_file(mask_copy: str) -> Path:
    """Where a mask's patch source keeps its foreground locations: beside it, ending .foreground (no copy does)."""
    return Path(mask_copy).with_suffix(".foreground")


def foreground_locations(mask: np.ndarray) -> np.ndarray:
    """(row, column) of the foreground pixels of a 2-D mask, int32: all of them up to FOREGROUND_LOCATIONS,
    else a uniform sample of that many or of 1% of them, the more (nnU-Net's rule), the same for the same mask."""
    flat = np.flatnonzero(mask)
    keep = max(FOREGROUND_LOCATIONS, math.ceil(len(flat) / 100))
    if len(flat) > keep:
        flat = np.random.default_rng(0).choice(flat, keep, replace=False)
    return np.stack(np.unravel_index(flat, mask.shape), axis=1).astype(np.int32)


def write_patch_source(path: Path, pixels: np.ndarray, is_mask: bool, made_from: Path) -> None:
    """A copy that crops are read from (read_crop): a .npy array, RGB or one channel. A mask's
    foreground locations are written before it, so that a mask found up to date has them."""
    if is_mask:
        write_array(foreground_file(str(path)), foreground_locations(pixels), made_from)
        pixels = pixels[..., None]
    else:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    write_array(path, pixels, made_from)


def resize_file(task: tuple[str, str, bool], size: int, scale: Optional[float] = None) -> None:
    """Write one copy: a BMP at size x size, or with scale a patch source rescaled by it."""
    source, target, is_mask = task
    pixels = resized(source, size, is_mask, scale)
    if scale is None:
        write_image(Path(target), pixels, made_from=Path(source))
    else:
        write_patch_source(Path(target), pixels, is_mask, made_from=Path(source))


def written_files(target: str, is_mask: bool, scale: Optional[float]) -> list[Path]:
    """The files resize_file writes for a copy: the copy, and for a mask's patch source its foreground locations."""
    return [Path(target), foreground_file(target)] if is_mask and scale is not None else [Path(target)]


def resized_copies(table: pd.DataFrame, csv_path: Path, size: int, scale: Optional[float] = None) -> pd.DataFrame:
    """Point the table at BMP copies resized to size x size (with scale: .npy patch sources rescaled by it),
    writing those missing or not made from their source as it is now.

    BMP because decoding is most of the cost left at training size: a 384 px BMP decodes in about
    0.5 ms, the same PNG in about 3.5 ms.
    """
    data_root = csv_path.parent.parent
    cache = cache_folder(data_root, size, "bmp", scale)
    suffix = ".bmp" if scale is None else ".npy"
    resized = table.copy()
    tasks = []
    for column in ("image", "mask"):
        is_mask = column == "mask"
        resized[column] = [str(cache / Path(p).relative_to(data_root).with_suffix(suffix)) for p in table[column]]
        tasks += [
            (source, target, is_mask)
            for source, target in zip(table[column], resized[column])
            if not all(is_up_to_date(Path(source), made) for made in written_files(target, is_mask, scale))
        ]
    if tasks:
        with ProcessPoolExecutor() as pool:
            work = pool.map(functools.partial(resize_file, size=size, scale=scale), tasks, chunksize=8)
            try:
                list(tqdm(work, total=len(tasks), desc=f"resizing to {cache.name} (once)", unit="file"))
            except ValueError as error:
                raise UserError(str(error)) from error
            except OSError as error:  # a full disk, or a DATA that cannot be written
                raise UserError(f"cannot write the resized copies into {cache}: {error.strerror or error}") from error
    return resized


def shard_count(records: int) -> int:
    """Shard files for a table: SHARD_RECORDS records a file, but up to MIN_SHARD_FILES files of at least
    MIN_SHARD_RECORDS."""
    return max(math.ceil(records / SHARD_RECORDS), min(MIN_SHARD_FILES, math.ceil(records / MIN_SHARD_RECORDS)))


def source_stamp(path: str, data_root: Path) -> list:
    """[path relative to DATA, size, modification time]: a source as a shard file was made from it."""
    stat = os.stat(path)
    return [Path(path).relative_to(data_root).as_posix(), stat.st_size, stat.st_mtime_ns]


def shard_plan(table: pd.DataFrame, data_root: Path, stem: str) -> dict[str, dict]:
    """Each shard file's name and what it is made of. File i holds rows i, i + n, i + 2n, ... of the table, so
    that every file is a spread of the whole table (CSVs are sorted by group) and reading the files in turn,
    one record each, gives back the table's order."""
    rows = [
        [source_stamp(image, data_root), source_stamp(mask, data_root)]
        for image, mask in zip(table.image, table["mask"])
    ]
    n = shard_count(len(rows))
    return {f"{stem}-{i:05d}-of-{n:05d}.tfrecord": {"jpeg_quality": JPEG_QUALITY, "rows": rows[i::n]} for i in range(n)}


def encoded_record(image_path: str, mask_path: str, size: int) -> bytes:
    """One serialized tf.train.Example: the image resized as JPEG, the mask resized as PNG (lossless: a JPEG
    mask would no longer be binary)."""
    _, image = cv2.imencode(".jpg", resized(image_path, size, False), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    _, mask = cv2.imencode(".png", resized(mask_path, size, True), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    feature = {
        key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data.tobytes()]))
        for key, data in ((IMAGE_KEY, image), (MASK_KEY, mask))
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shard(task: tuple[str, list[tuple[str, str]]], size: int) -> int:
    """Write one shard file of (image path, mask path) pairs, whole or not at all; returns its records."""
    path, pairs = task
    try:
        with replacing(Path(path)) as temporary, tf.io.TFRecordWriter(str(temporary)) as writer:
            for image, mask in pairs:
                writer.write(encoded_record(image, mask, size))
    except tf.errors.OpError as error:  # the writer's own failure to write, e.g. a full disk
        raise OSError(error.message) from None
    return len(pairs)


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def write_shards(folder: Path, plan: dict[str, dict], stale: list[str], data_root: Path, size: int) -> None:
    """Write the stale shard files, in parallel, each by one process. The manifest leaves them out until they
    are all written, so that a run stopped in between writes them again; files of an earlier plan go."""
    write_text(folder / MANIFEST, json.dumps({k: v for k, v in read_manifest(folder).items() if k not in stale}))
    tasks = [
        (
            str(folder / name),
            [(str(data_root / image[0]), str(data_root / mask[0])) for image, mask in plan[name]["rows"]],
        )
        for name in stale
    ]
    total = sum(len(pairs) for _, pairs in tasks)
    with ProcessPoolExecutor(min(len(tasks), os.cpu_count() or 1)) as pool:
        with tqdm(total=total, desc=f"writing TFRecords of {folder.name} at {size}px (once)", unit="sample") as bar:
            for records in pool.map(functools.partial(write_shard, size=size), tasks):
                bar.update(records)
    write_text(folder / MANIFEST, json.dumps(plan))
    for leftover in set(folder.glob("*.tfrecord")) - {folder / name for name in plan}:
        leftover.unlink(missing_ok=True)


def tfrecord_shards(table: pd.DataFrame, csv_path: Path, size: int) -> list[RecordFile]:
    """The TFRecord shard files of a prepared CSV's table at size x size, in
    DATA/cache/<size>px-tfrecord/<csv stem>/, writing those that are missing or not made from the table's
    rows and sources as they are now (their paths, sizes and modification times, kept in manifest.json)."""
    data_root = csv_path.parent.parent
    folder = cache_folder(data_root, size, "tfrecord") / csv_path.stem
    plan = shard_plan(table, data_root, csv_path.stem)
    manifest = read_manifest(folder)
    stale = [name for name, made_of in plan.items() if manifest.get(name) != made_of or not (folder / name).exists()]
    if stale:
        try:
            write_shards(folder, plan, stale, data_root, size)
        except ValueError as error:
            raise UserError(str(error)) from error
        except OSError as error:  # a full disk, or a DATA that cannot be written
            raise UserError(f"cannot write the TFRecord cache into {folder}: {error.strerror or error}") from error
    return [RecordFile(folder / name, len(made_of["rows"])) for name, made_of in plan.items()]


def shard_rows(table: pd.DataFrame, shard: tuple[int, int]) -> pd.DataFrame:
    """This worker's rows, every count-th from its index, for shard = (count, index). A table with fewer
    rows than workers is kept whole, so that no worker is left with an empty group to draw from."""
    count, index = shard
    return table.iloc[index::count] if len(table) >= count else table


def load_samples(
    csv_paths: Sequence[Path],
    image_size: int,
    resize_first: bool,
    shard: tuple[int, int] = (1, 0),
    scale: Optional[float] = None,
) -> tuple[list[pd.DataFrame], int]:
    """The tables of csv_paths, each cut to this worker's shard before its resized copies are made (so
    that the workers of a cluster share the resizing), and the number of samples of all shards. With
    scale, the copies are the images rescaled by it instead of squashed to image_size."""
    tables = [read_samples(Path(p)) for p in csv_paths]
    n_samples = sum(len(t) for t in tables)
    tables = [shard_rows(t, shard) for t in tables]
    if resize_first:
        tables = [resized_copies(t, Path(p), image_size, scale) for t, p in zip(tables, csv_paths)]
    return tables, n_samples


def record_files(csv_paths: Sequence[Path], image_size: int) -> list[list[RecordFile]]:
    """Each prepared CSV's TFRecord shard files at image_size, written where missing or stale."""
    return [tfrecord_shards(read_samples(Path(p)), Path(p), image_size) for p in csv_paths]


def path_dataset(table: pd.DataFrame, training: bool, seed: Optional[int] = None) -> tf.data.Dataset:
    """(image path, mask path) pairs; for training shuffled anew each pass and repeated forever."""
    dataset = tf.data.Dataset.from_tensor_slices((table.image.to_numpy(str), table["mask"].to_numpy(str)))
    if training:
        dataset = dataset.shuffle(len(table), seed=seed, reshuffle_each_iteration=True).repeat()
    return dataset


def read_pair(image_path: tf.Tensor, mask_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The encoded bytes of an image and its mask, as augment_function's loader takes them."""
    return tf.io.read_file(image_path), tf.io.read_file(mask_path)


def worker_files(files: Sequence[RecordFile], shard: tuple[int, int]) -> list[RecordFile]:
    """The files that worker `index` of `count` (shard) reads, each with the number of its records there:
    files[index::count] whole when there are at least `count` files, otherwise every file, of which it keeps
    every count-th record from the index-th."""
    count, index = shard
    if not 0 <= index < count:
        raise UserError(f"worker {index} of {count} does not exist: the index runs from 0 to {count - 1}")
    if len(files) >= count:
        return list(files[index::count])
    return [RecordFile(f.path, len(range(index, f.records, count))) for f in files]


def parse_record(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    features = tf.io.parse_single_example(record, RECORD_FEATURES)
    return features[IMAGE_KEY], features[MASK_KEY]


def record_dataset(
    files: Sequence[RecordFile], training: bool, seed: Optional[int] = None, shard: tuple[int, int] = (1, 0)
) -> tf.data.Dataset:
    """(image bytes, mask bytes) of the records that this worker reads (see worker_files); shard is (number of
    workers, this worker's index), and the workers' shares are disjoint and cover every record once.

    training: endless; each pass shuffles the order of the files, reads PARALLEL_FILES of them at once and
    shuffles their records in a buffer of up to SHUFFLE_RECORDS. This shuffle is approximate, over files and
    buffer: not path_dataset's shuffle of the whole table. Otherwise one pass in a fixed order, the CSV's
    (see shard_plan) for a worker that reads every file.
    """
    if sum(f.records for f in files) < shard[0]:  # as shard_rows: a group smaller than the cluster is read whole
        shard = (1, 0)
    count, index = shard
    mine = worker_files(files, shard)
    samples = sum(f.records for f in mine)
    if not samples:
        raise UserError(f"worker {index} of {count} gets no samples of {files[0].path.parent}: fewer than workers")
    whole_files = len(files) >= count

    def read(path: tf.Tensor) -> tf.data.Dataset:
        records = tf.data.TFRecordDataset(path)
        return records if whole_files else records.shard(count, index)

    paths = tf.data.Dataset.from_tensor_slices([str(f.path) for f in mine])
    if training:
        paths = paths.shuffle(len(mine), seed=seed, reshuffle_each_iteration=True).repeat()
        records = paths.interleave(read, min(len(mine), PARALLEL_FILES), num_parallel_calls=tf.data.AUTOTUNE)
        records = records.shuffle(min(samples, SHUFFLE_RECORDS), seed=seed, reshuffle_each_iteration=True)
    else:
        records = paths.interleave(read, cycle_length=len(mine), block_length=1)
    return records.map(parse_record, num_parallel_calls=tf.data.AUTOTUNE)


def sample_seed(seed: int, index: int) -> int:
    """The augmentation seed of the index-th sample of a stream: the same for the same seed and index, whichever
    thread draws it."""
    return int(np.random.SeedSequence([seed % 2**32, index]).generate_state(1)[0])


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


def augment_function(
    transform: A.Compose, size: int, seed: int, patches: Optional[Patches] = None, random_crops: bool = True
) -> Callable:
    """(index, (image bytes, mask bytes)) to (image, mask): decode with TensorFlow ops, augment with
    albumentations in a numpy function (uint8 in, uint8 out). With patches, (index, (image path, mask path)) of
    patch sources instead, each read as a crop (read_crop): random (seeded by sample_seed) with random_crops,
    else the centre crop.
    Each thread has its own copy of the transform, given for each sample a NumPy and a Python generator seeded
    by sample_seed (a crop draws from the NumPy one first): a run repeats exactly, which a random generator
    shared by the threads would not."""
    # By thread id, not in a threading.local: TensorFlow calls the numpy function from threads of its own,
    # each call with a new Python thread state, so a threading.local lost its copy after every sample.
    copies: dict[int, A.Compose] = {}

    def generators(index: np.int64) -> tuple[np.random.Generator, random.Random]:
        state = sample_seed(seed, int(index))
        return np.random.default_rng(state), random.Random(state)

    def transformed(
        image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, py_random: random.Random
    ) -> tuple[np.ndarray, np.ndarray]:
        own = copies.get(threading.get_ident())
        if own is None:
            own = copies[threading.get_ident()] = copy.deepcopy(transform)
        # One pair of generators that every transform of the Compose draws from in turn: Compose.set_random_seed
        # gives each transform the same seed, so that they all drew the same numbers (flip, affine, noise, blur
        # and colour applied all together or not at all)
        own.set_random_state(rng, py_random)
        augmented = own(image=image, mask=mask)
        return augmented["image"], augmented["mask"]

    def augment(index: np.int64, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transformed(image, mask, *generators(index))

    def crop_and_augment(index: np.int64, image_path: bytes, mask_path: bytes) -> tuple[np.ndarray, np.ndarray]:
        rng, py_random = generators(index)
        image, mask = read_crop(image_path.decode(), mask_path.decode(), patches, rng if random_crops else None)
        return transformed(image, mask, rng, py_random)

    def load_and_augment(index: tf.Tensor, sample: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        if patches:
            image, mask = tf.numpy_function(crop_and_augment, [index, *sample], [tf.uint8, tf.uint8])
        else:
            # decode_image reads the JPEG/PNG records, the BMP copies and the full-size PNGs alike;
            # masks are stored with one channel
            image = tf.io.decode_image(sample[0], channels=3, expand_animations=False)
            mask = tf.io.decode_image(sample[1], expand_animations=False)
            image, mask = tf.numpy_function(augment, [index, image, mask], [tf.uint8, tf.uint8])
        image.set_shape((size, size, 3))
        mask.set_shape((size, size, 1))
        return image, mask

    return load_and_augment


def to_model_input(dtype: tf.DType) -> Callable:
    """uint8 batches to the model's dtype: images in [0, 1], masks in {0, 1}."""

    def convert(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.image.convert_image_dtype(images, dtype), tf.cast(masks > 0, dtype)

    return convert


def weighted_mix(streams: list[tf.data.Dataset], weights: Optional[Sequence[float]], seed: int) -> tf.data.Dataset:
    """Draw from each group's endless stream with the given weights (equal by default)."""
    if weights is None:
        weights = [1.0] * len(streams)
    if len(weights) != len(streams):
        raise UserError(f"--group_weights got {len(weights)} weights for {len(streams)} groups")
    weights = [w / sum(weights) for w in weights]
    return tf.data.Dataset.sample_from_datasets(streams, weights=weights, seed=seed)


def group_mix(tables: list[pd.DataFrame], weights: Optional[Sequence[float]], seed: int = 0) -> tf.data.Dataset:
    """Each group's endless, shuffled stream of paths, drawn with the given weights (weighted_mix)."""
    streams = [path_dataset(t, training=True, seed=seed + i) for i, t in enumerate(tables)]
    return weighted_mix(streams, weights, seed)


def path_samples(
    tables: list[pd.DataFrame], training: bool, balance: bool, group_weights: Optional[Sequence[float]], seed: int
) -> tf.data.Dataset:
    """(image path, mask path) pairs of the tables; with balance (training only) each table is a group
    (group_mix)."""
    if training and balance:
        return group_mix(tables, group_weights, seed)
    return path_dataset(pd.concat(tables), training, seed)


def record_samples(
    files: list[list[RecordFile]],
    training: bool,
    balance: bool,
    group_weights: Optional[Sequence[float]],
    seed: int,
    shard: tuple[int, int] = (1, 0),
) -> tuple[tf.data.Dataset, int]:
    """Encoded (image, mask) pairs from each CSV's shard files, this worker's share (record_dataset), and how
    many samples a pass of it holds. With balance (training only) each CSV's files are a group, sharded on
    their own and drawn by weighted_mix; otherwise one stream over all the files."""
    groups = files if training and balance else [[f for group in files for f in group]]
    streams = [record_dataset(group, training, seed + i, shard) for i, group in enumerate(groups)]
    share = sum(f.records for group in groups for f in worker_files(group, shard))
    return (weighted_mix(streams, group_weights, seed) if training and balance else streams[0]), share


def batch_in_order(samples: tf.data.Dataset, n: int, batch_size: int, replicas: int, load: Callable) -> tf.data.Dataset:
    """Load and batch in order; the last few samples join the batch before them. No batch is then
    smaller than batch_size: a device with an empty batch fails on the CPU (oneDNN), and the Dice
    loss of a batch of two images is a poor sample of the set's."""
    if n < replicas:
        raise UserError(f"{n} validation samples cannot be split over {replicas} devices")
    remainder = n % batch_size
    parts = [(samples, batch_size)]
    if remainder and n > batch_size:
        split = n - remainder - batch_size
        parts = [(samples.take(split), batch_size), (samples.skip(split), batch_size + remainder)]
    batches = [part.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(size) for part, size in parts]
    return functools.reduce(tf.data.Dataset.concatenate, batches)


def build_dataset(
    csv_paths: Sequence[Path],
    image_size: int,
    batch_size: int,
    training: bool,
    balance: bool = False,
    group_weights: Optional[Sequence[float]] = None,
    resize_first: bool = True,
    replicas: int = 1,
    seed: Optional[int] = None,
    cache_format: str = "bmp",
    shard: tuple[int, int] = (1, 0),
    patches: Optional[Patches] = None,
) -> tuple[tf.data.Dataset, int]:
    """Batches of (image, mask) from prepared CSVs, and the number of samples they list.

    training: shuffled, augmented, endless, fixed-size batches (so that MirroredStrategy splits them
    evenly); with balance, each CSV is one group drawn with group_weights. Otherwise one pass, in
    CSV order, resize only, no batch smaller than batch_size (see batch_in_order), for every worker to
    take its part of each batch. Batches are float16 under the mixed_float16 policy, float32 otherwise.
    The same seed gives the same batches (none: one is drawn). cache_format "tfrecord" reads TFRecord
    shards (tfrecord_shards) instead of BMP copies, shuffled approximately (record_dataset), and needs
    resize_first. In a cluster, shard = (workers, this worker's index) gives each worker its own part of
    the training samples, each sample a seed of its own; the count returned is still that of all
    samples, so that every worker counts the same steps. With patches, the samples are crops of the
    images rescaled by patches.scale (random for training, the centre otherwise), not whole images.
    """
    seed = int(np.random.default_rng().integers(2**31)) if seed is None else seed
    if cache_format not in CACHE_FORMATS:
        raise UserError(f"--cache_format {cache_format}: expected one of {', '.join(CACHE_FORMATS)}")
    if cache_format == "tfrecord" and not resize_first:
        raise UserError("--cache_format tfrecord keeps the samples at --image_size: it needs --resize_first True")
    if patches and cache_format != "bmp":
        raise UserError("--patch_size crops uncompressed copies at --scale: it needs --cache_format bmp")
    size = patches.size if patches else image_size
    transform = train_transform(size) if training else valid_transform(size)
    load = augment_function(transform, size, seed, patches, random_crops=training)
    shard = shard if training else (1, 0)  # validation: each worker reads it all, to score its part of each batch
    if cache_format == "tfrecord":
        files = record_files(csv_paths, image_size)
        samples, _ = record_samples(files, training, balance, group_weights, seed, shard)
        n_samples = sum(f.records for group in files for f in group)
    else:
        tables, n_samples = load_samples(csv_paths, image_size, resize_first, shard, patches and patches.scale)
        samples = path_samples(tables, training, balance, group_weights, seed)
        if not patches:  # patches read their own crops
            samples = samples.map(read_pair, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        count, index = shard
        indices = tf.data.Dataset.range(index, 2**62, count)  # each sample's place among all workers' samples
        loaded = tf.data.Dataset.zip(indices, samples).map(load, num_parallel_calls=tf.data.AUTOTUNE)
        batches = loaded.batch(batch_size, drop_remainder=True)
    else:
        batches = batch_in_order(samples.enumerate(), n_samples, batch_size, replicas, load)
        options = tf.data.Options()  # every worker reads the set and scores its part of each batch
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        batches = batches.with_options(options)
    dtype = tf.as_dtype(tf.keras.mixed_precision.global_policy().compute_dtype)
    dataset = batches.map(to_model_input(dtype), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return dataset, n_samples


def train_csvs(data_root: Path, balance: bool) -> list[Path]:
    """train.csv, or with balance the group CSVs, in alphabetical order of the group names."""
    if not balance:
        return [split_csv(data_root, "train")]
    groups = sorted((data_root / CSV_FOLDER).glob("train_*.csv"))
    if not groups:
        raise UserError(f"--balance needs {data_root / CSV_FOLDER}/train_<group>.csv: run data_preparation.py first")
    return groups


def training_batches(
    args: argparse.Namespace, batch_size: Optional[int] = None, shard: tuple[int, int] = (1, 0)
) -> tuple[tf.data.Dataset, int]:
    """The training dataset that the loader flags (utils.add_loader_args) ask for, and its sample count;
    batches of batch_size (default: --batch_size) from the shard (workers, index) of the samples."""
    return build_dataset(
        train_csvs(Path(args.data_root), args.balance),
        args.image_size,
        batch_size or args.batch_size,
        training=True,
        balance=args.balance,
        group_weights=args.group_weights,
        resize_first=args.resize_first,
        seed=args.seed,
        shard=shard,
        cache_format=args.cache_format,
        patches=patches_of(args),
    )


def patches_of(args: argparse.Namespace) -> Optional[Patches]:
    """The patch training that the loader flags ask for, or None for whole images."""
    return Patches(args.patch_size, args.scale, args.foreground_share) if args.patch_size else None


def steps_per_epoch(n_samples: int, global_batch: int) -> int:
    return math.ceil(n_samples / global_batch)


def show_batch(args: argparse.Namespace) -> None:
    """Print one training batch's shapes, dtypes and value ranges, and save the augmentation grid."""
    if args.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
    dataset, n_samples = training_batches(args)
    images, masks = next(iter(dataset))
    print(f"{n_samples} training samples, {steps_per_epoch(n_samples, args.batch_size)} steps per epoch")
    for name, batch in (("images", images), ("masks", masks)):
        values = batch.numpy().astype(np.float32)
        print(f"{name}: shape {tuple(batch.shape)}, {batch.dtype.name}, min {values.min():g}, max {values.max():g}")
    to_uint8 = tf.image.convert_image_dtype(tf.cast(images[:12], tf.float32), tf.uint8).numpy()
    save_grid(to_uint8, masks[:12].numpy(), Path(args.output))
    print(f"saved {args.output}")


def main(argv: Optional[Sequence[str]] = None) -> None:
    with exit_on_user_error():
        show_batch(dataloader_args(argv))


if __name__ == "__main__":
    main()
