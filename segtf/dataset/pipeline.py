"""The input pipeline: CSVs of image/mask pairs to batches of (image, mask) for training and validation.

Where the work goes: by default every image and mask is resized once to the training size and kept as BMP in
DATA/cache/<size>px/ (disk_cache.py). Each epoch then decodes these small files with TensorFlow's own ops and runs the
albumentations transform on them in a `tf.numpy_function`, many samples at a time (augmentation.py). File paths are
shuffled, never decoded images, so memory does not depend on the number of samples. The samples can instead come
from TFRecord shards (tfrecord_cache.py) or be crops of rescaled copies (patches.py).
"""

import functools
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

from segtf.checked import Source, read_table
from segtf.config import LoaderConfig, loader_conflict
from segtf.dataset.augmentation import augment_function, train_transform, valid_transform
from segtf.dataset.classes import class_count
from segtf.dataset.disk_cache import resized_copies
from segtf.dataset.input_scaling import batch_dtype, to_model_input
from segtf.dataset.layout import CSV_FOLDER, split_csv
from segtf.dataset.patches import Patches, patch_sources
from segtf.dataset.tfrecord_cache import RecordFile, record_dataset, tfrecord_shards, worker_files
from segtf.errors import UserError

import numpy as np
import pandas as pd
import tensorflow as tf

CACHE_FORMATS = ("bmp", "tfrecord")


def read_pairs(csv_path: Path) -> pd.DataFrame:
    """A prepared CSV as written (paths relative to DATA), checked; UserError if it is missing or malformed."""
    if not csv_path.exists():
        raise UserError(
            f"{csv_path} does not exist: run data_preparation.py --data_root {csv_path.parent.parent} first"
        )
    source = Source(csv_path, f"run data_preparation.py --data_root {csv_path.parent.parent} again")
    return read_table(source, {"image": "text", "mask": "text"})


def read_samples(csv_path: Path) -> pd.DataFrame:
    """A prepared CSV with absolute paths; UserError if the CSV or a listed file is missing, or if it lists no
    pair."""
    table = read_pairs(csv_path)
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


def check_not_empty(data_root: Path, folds: int) -> None:
    """UserError when the prepared dataset holds no pair, or no validation pair for a run that validates on it (not
    one of --folds)."""
    train, valid = (split_csv(data_root, split) for split in ("train", "valid"))
    if not (train.exists() and valid.exists()):
        return  # read_samples says to prepare the data
    sizes = {path: len(read_pairs(path)) for path in (train, valid)}  # the listed files: read_samples checks them
    if not any(sizes.values()):
        raise UserError(f"{data_root}: the dataset is empty, data_preparation.py prepared no pair (its summary and "
                        f"{data_root / CSV_FOLDER / 'rejected.csv'} say why)")  # fmt: skip
    if not folds and not sizes[valid]:
        raise UserError(f"{valid} lists no pairs (--valid_fraction 0?): cross-validate with --folds N instead")


def shard_rows(table: pd.DataFrame, shard: tuple[int, int]) -> pd.DataFrame:
    """This worker's rows, every count-th from its index, for shard = (count, index). A table with fewer
    rows than workers is kept whole, so that no worker is left with an empty group to draw from."""
    count, index = shard
    return table.iloc[index::count] if len(table) >= count else table


def copy_maker(image_size: int, resize_first: bool, patches: Optional[Patches]) -> Optional[Callable]:
    """How a table's samples are copied before training, as (table, csv path) to the table of copies: patch sources
    rescaled by patches.scale, BMPs at image_size with resize_first, or None to read the prepared PNGs."""
    if patches:
        return functools.partial(patch_sources, scale=patches.scale)
    return functools.partial(resized_copies, size=image_size) if resize_first else None


def load_samples(
    csv_paths: Sequence[Path], make_copies: Optional[Callable] = None, shard: tuple[int, int] = (1, 0)
) -> tuple[list[pd.DataFrame], int]:
    """The tables of csv_paths, each cut to this worker's shard before its copies are made (so that the workers
    of a cluster share the copying; see copy_maker), and the number of samples of all shards."""
    tables = [read_samples(Path(p)) for p in csv_paths]
    n_samples = sum(len(t) for t in tables)
    tables = [shard_rows(t, shard) for t in tables]
    if make_copies:
        tables = [make_copies(t, Path(p)) for t, p in zip(tables, csv_paths)]
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


def encoded_samples(
    csv_paths: Sequence[Path],
    image_size: int,
    training: bool,
    seed: int,
    shard: tuple[int, int],
    patches: Optional[Patches],
    cache_format: str,
    resize_first: bool,
    balance: bool,
    group_weights: Optional[Sequence[float]],
) -> tuple[tf.data.Dataset, int]:
    """The samples as augment_function's loader takes them, from the TFRecord shards or from files (paths of patch
    sources, or the bytes of BMP copies or PNGs), and the number of samples of all shards."""
    if cache_format == "tfrecord":
        files = record_files(csv_paths, image_size)
        samples, _ = record_samples(files, training, balance, group_weights, seed, shard)
        return samples, sum(f.records for group in files for f in group)
    make_copies = copy_maker(image_size, resize_first, patches)
    tables, n_samples = load_samples(csv_paths, make_copies, shard)
    samples = path_samples(tables, training, balance, group_weights, seed)
    if not patches:  # patches read their own crops
        samples = samples.map(read_pair, num_parallel_calls=tf.data.AUTOTUNE)
    return samples, n_samples


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
    dtype: tf.DType = tf.float32,
    augment: str = "photo",
    classes: int = 1,
) -> tuple[tf.data.Dataset, int]:
    """Batches of (image, mask) from prepared CSVs, images scaled by input_scaling and masks in {0, 1} (with several
    classes: class indices, and classes.IGNORED), both in dtype (float16 for a mixed-precision model), and the
    number of samples the CSVs list.

    training: shuffled, augmented (augment: augmentation.AUGMENTATIONS),
    endless, fixed-size batches (so that MirroredStrategy splits them
    evenly); with balance, each CSV is one group drawn with group_weights. Otherwise one pass, in
    CSV order, resize only, no batch smaller than batch_size (see batch_in_order), for every worker to
    take its part of each batch. The same seed gives the same batches (none: one is drawn).
    cache_format "tfrecord" reads TFRecord shards instead of BMP copies, shuffled approximately
    (tfrecord_cache.record_dataset). In a cluster, shard = (workers, this worker's index) gives each worker
    its own part of the training samples, each sample a seed of its own; the count returned is still that
    of all samples, so that every worker counts the same steps. With patches, the samples are crops of the
    images rescaled by patches.scale (random for training, the centre otherwise), not whole images.
    """
    seed = int(np.random.default_rng().integers(2**31)) if seed is None else seed
    if cache_format not in CACHE_FORMATS:
        raise UserError(f"--cache_format {cache_format}: expected one of {', '.join(CACHE_FORMATS)}")
    conflict = loader_conflict(cache_format, resize_first, patches and patches.size)
    if conflict:
        raise UserError(conflict)
    size = patches.size if patches else image_size
    transform = train_transform(size, augment) if training else valid_transform(size)
    load = augment_function(transform, size, seed, patches, random_crops=training)
    shard = shard if training else (1, 0)  # validation: each worker reads it all, to score its part of each batch
    samples, n_samples = encoded_samples(
        csv_paths, image_size, training, seed, shard, patches, cache_format, resize_first, balance, group_weights
    )
    if training:
        count, index = shard
        indices = tf.data.Dataset.range(index, 2**62, count)  # each sample's place among all workers' samples
        loaded = tf.data.Dataset.zip(indices, samples).map(load, num_parallel_calls=tf.data.AUTOTUNE)
        batches = loaded.batch(batch_size, drop_remainder=True)
    else:
        batches = batch_in_order(samples.enumerate(), n_samples, batch_size, replicas, load)
        every_worker = tf.data.Options()  # every worker reads the set and scores its part of each batch
        every_worker.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        batches = batches.with_options(every_worker)

    def scaled(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return to_model_input(images, dtype), tf.cast(masks > 0 if classes == 1 else masks, dtype)

    return batches.map(scaled, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), n_samples


def train_csvs(data_root: Path, balance: str, split: str = "train") -> list[Path]:
    """The CSV of the training split (train, or a fold's: folds.py); with balance groups, its group CSVs in
    alphabetical order of the group names; with balance classes, the split's and its class CSVs, class by class."""
    if balance == "none":
        return [split_csv(data_root, split)]
    if balance == "classes":
        found = (data_root / CSV_FOLDER).glob(f"classes_{split}_*.csv")
        classes = sorted(found, key=lambda p: int(p.stem.split("_")[-1]))
        if not classes:
            raise UserError(
                f"--balance classes needs {data_root / CSV_FOLDER}/classes_{split}_<k>.csv, which data_preparation.py "
                "--classes K writes for train (not yet for folds)"
            )
        return [split_csv(data_root, split), *classes]
    groups = sorted((data_root / CSV_FOLDER).glob(f"{split}_*.csv"))
    if not groups:
        raise UserError(f"--balance needs {data_root / CSV_FOLDER}/train_<group>.csv: run data_preparation.py first")
    return groups


def training_batches(
    loader: LoaderConfig, batch_size: Optional[int] = None, shard: tuple[int, int] = (1, 0), split: str = "train"
) -> tuple[tf.data.Dataset, int]:
    """The training dataset of the loader's settings, and its sample count; batches of batch_size (default: the
    loader's) from the shard (workers, index) of the samples of split."""
    return build_dataset(
        train_csvs(Path(loader.data_root), loader.balance, split),
        loader.image_size,
        batch_size or loader.batch_size,
        training=True,
        balance=loader.balance != "none",
        group_weights=loader.group_weights,
        resize_first=loader.resize_first,
        seed=loader.seed,
        shard=shard,
        cache_format=loader.cache_format,
        patches=patches_of(loader),
        dtype=batch_dtype(loader.mixed_precision),
        augment=loader.augment,
        classes=class_count(Path(loader.data_root)),  # the data's, which train.py checks --classes against
    )


def patches_of(loader: LoaderConfig) -> Optional[Patches]:
    """The patch training the loader's settings ask for, or None for whole images."""
    return Patches(loader.patch_size, loader.scale, loader.foreground_share) if loader.patch_size else None
