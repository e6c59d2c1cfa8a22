"""The compact cache (--cache_format tfrecord): the resized samples as TFRecord shard files, the image as JPEG and the
mask as PNG, in DATA/cache/<size>px-tfrecord/<csv stem>/: the shard plan, its manifest, the writer and the reader.

About 14 times smaller than the BMP copies, read as a few large files, and shardable by file over several workers.
"""

import functools
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

from segtf.checked import Source, load_json, shown
from segtf.dataset.disk_cache import CACHE_FOLDER, resized
from segtf.errors import UserError
from segtf.files import replacing, write_text

import cv2
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

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


class RecordFile(NamedTuple):
    """A TFRecord shard file and its number of records."""

    path: Path
    records: int


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
    _, image = cv2.imencode(".jpg", resized(image_path, False, size=size), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    _, mask = cv2.imencode(".png", resized(mask_path, True, size=size), [cv2.IMWRITE_PNG_COMPRESSION, 9])
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
    if not path.exists():
        return {}
    source = Source(path, "delete it, and train.py writes the TFRecord shards again")
    manifest = load_json(source)
    if not isinstance(manifest, dict):
        raise source.fault(f"the file is {shown(manifest)}, where it takes an object of shard files")
    return manifest


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


def tfrecord_folder(data_root: Path, size: int) -> Path:
    return data_root / CACHE_FOLDER / f"{size}px-tfrecord"


def tfrecord_shards(table: pd.DataFrame, csv_path: Path, size: int) -> list[RecordFile]:
    """The TFRecord shard files of a prepared CSV's table at size x size, in
    DATA/cache/<size>px-tfrecord/<csv stem>/, writing those that are missing or not made from the table's
    rows and sources as they are now (their paths, sizes and modification times, kept in manifest.json)."""
    data_root = csv_path.parent.parent
    folder = tfrecord_folder(data_root, size) / csv_path.stem
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
