"""The loader (pipeline.py, its caches, patches and augmentation): shapes and dtypes, binary masks, geometry shared
by image and mask, balance, order."""

import copy
import os
import random
import shutil
import warnings
from pathlib import Path

from segtf.cli import prepare
from segtf.dataset import augmentation, disk_cache, pipeline, tfrecord_cache
from segtf.dataset.patches import (
    Patches,
    crop_corner,
    foreground_file,
    foreground_locations,
    read_crop,
    write_patch_copy,
)
from segtf.errors import UserError

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

SIZE = 64


def batches(data_root: Path, csv_name: str, training: bool, batch_size: int = 4, **options) -> tf.data.Dataset:
    dataset, _ = pipeline.build_dataset(
        [data_root / "csv_file" / csv_name], SIZE, batch_size, training=training, **options
    )
    return dataset


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16])
def test_batches_have_static_shapes_and_the_dtype_asked_for(synthetic_data, dtype):
    dataset = batches(synthetic_data, "train.csv", training=True, dtype=dtype)
    images, masks = next(iter(dataset))
    assert dataset.element_spec[0].shape == (4, SIZE, SIZE, 3) and dataset.element_spec[1].shape == (4, SIZE, SIZE, 1)
    assert images.dtype == dtype and masks.dtype == dtype
    assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # asked for, not read from a global


@pytest.mark.parametrize("resize_first", [True, False])
def test_masks_stay_binary_after_augmentation(synthetic_data, resize_first):
    dataset = batches(synthetic_data, "train.csv", training=True, batch_size=8, resize_first=resize_first)
    values = np.concatenate([masks.numpy().ravel() for _, masks in dataset.take(4)])
    assert set(np.unique(values)) == {0.0, 1.0}


def test_transforms_raise_no_warnings():
    image, mask = np.zeros((80, 96, 3), np.uint8), np.zeros((80, 96, 1), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for augment in augmentation.AUGMENTATIONS:
            augmentation.train_transform(SIZE, augment)(image=image, mask=mask)
        augmentation.valid_transform(SIZE)(image=image, mask=mask)


@pytest.mark.parametrize("augment, turns", [("photo", False), ("any_orientation", True)])
def test_any_orientation_turns_images_upside_down_with_their_masks_and_photo_does_not(augment, turns):
    """A green mark in the top-left corner: photo's tilt of at most 30 degrees keeps it in the top half, while
    upside-down flips and 90-degree turns take it to the bottom; the mask goes wherever the mark goes."""
    size = 64
    mask = np.zeros((size, size, 1), np.uint8)
    mask[4:20, 6:30] = 1
    image = np.where(mask > 0, np.uint8([128, 230, 128]), np.uint8([128, 25, 128]))
    transform = augmentation.train_transform(size, augment)
    bottom, seen = 0, 0
    for seed in range(120):
        transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = transform(image=image, mask=mask)
        marked = out["mask"][..., 0] > 0
        if marked.sum() < 40:  # zoomed or shifted out of the picture
            continue
        greener = out["image"][..., 1].astype(int) - out["image"][..., 0] > 25
        assert (greener == marked).mean() > 0.95, seed  # the mask moved with the image
        seen += 1
        bottom += np.nonzero(marked)[0].mean() > size / 2
    assert seen > 100 and (bottom > 30 if turns else bottom == 0), (seen, bottom)


GREEN_SIZE = 256


@pytest.fixture(scope="module")
def mask_is_green_channel(tmp_path_factory) -> Path:
    """Images whose mask is their green channel thresholded at 127: one large bright ellipse on dark.

    256 px and a large shape, because blur and brightness move a thresholded edge by about a pixel:
    at 64 px the outline alone is 3% of the image, here under 1%.
    """
    data_root = tmp_path_factory.mktemp("green")
    (data_root / "images").mkdir()
    (data_root / "masks").mkdir()
    for i in range(24):
        rng = np.random.default_rng(i)
        image = np.full((GREEN_SIZE, GREEN_SIZE, 3), 128, np.uint8)
        image[:, :, 1] = 25
        center = (int(rng.integers(100, 156)), int(rng.integers(100, 156)))
        cv2.ellipse(image, center, (90, 60), float(i * 15), 0, 360, (128, 230, 128), -1)
        cv2.imwrite(str(data_root / f"images/{i}.png"), image)
        cv2.imwrite(str(data_root / f"masks/{i}.png"), np.where(image[:, :, 1] > 127, 255, 0).astype(np.uint8))
    prepare.main(["--data_root", str(data_root), "--valid_fraction", "0", "--workers", "2"])
    return data_root


def test_image_and_mask_move_together(mask_is_green_channel):
    csv_path = mask_is_green_channel / "csv_file" / "train.csv"
    dataset, _ = pipeline.build_dataset([csv_path], GREEN_SIZE, 24, training=True)
    images, masks = next(iter(dataset))
    # Green above red marks the ellipse, not the background or the black border, whatever the brightness:
    # a darkening can take the whole ellipse below green 0.5 (2 images in 4800), and noise the border above red.
    greener = (images[..., 1] - images[..., 0]).numpy() > 0.1
    agreement = (greener == (masks[..., 0].numpy() > 0.5)).mean(axis=(1, 2))
    assert agreement.min() >= 0.98, agreement  # lowest of 4800 augmented images: 0.989; a mask left unmoved: about 0.7
    assert masks.numpy().mean() > 0.1  # the shapes are there, not all cut away


def test_balanced_groups_are_drawn_equally_often():
    tables = [pd.DataFrame({"image": [f"g{g}_{i}" for i in range(n)], "mask": ["m"] * n}) for g, n in
              enumerate((10, 100, 1000))]  # fmt: skip
    draws = [image.decode()[:2] for image, _ in pipeline.group_mix(tables, None).take(3000).as_numpy_iterator()]
    shares = pd.Series(draws).value_counts(normalize=True)
    assert all(abs(shares[f"g{g}"] - 1 / 3) <= 0.05 for g in range(3)), shares
    weighted = [image.decode()[:2] for image, _ in pipeline.group_mix(tables, [2, 1, 1]).take(3000).as_numpy_iterator()]
    assert abs(pd.Series(weighted).value_counts(normalize=True)["g0"] - 0.5) <= 0.05


def test_balance_reads_one_csv_per_group(synthetic_data):
    csvs = pipeline.train_csvs(synthetic_data, balance="groups")
    assert [p.name for p in csvs] == [f"train_group_{g}.csv" for g in "abcd"]
    dataset, n = pipeline.build_dataset(csvs, SIZE, 4, training=True, balance=True)
    assert n == len(pd.read_csv(synthetic_data / "csv_file" / "train.csv"))
    assert next(iter(dataset))[0].shape == (4, SIZE, SIZE, 3)


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_take_disjoint_shards_of_every_group_that_cover_it(synthetic_data, workers):
    csvs = pipeline.train_csvs(synthetic_data, balance="groups")
    shards = [pipeline.load_samples(csvs, shard=(workers, i)) for i in range(workers)]
    assert {n for _, n in shards} == {len(pd.read_csv(synthetic_data / "csv_file" / "train.csv"))}  # for the steps
    for group, csv in enumerate(csvs):
        whole = list(pipeline.read_samples(csv).image)
        parts = [list(tables[group].image) for tables, _ in shards]
        if len(whole) >= workers:
            assert sorted(sum(parts, [])) == sorted(whole)  # each sample in exactly one shard
        else:  # group_c has 2 pairs: each of 3 workers draws from all of them, so that none has an empty group
            assert all(part == whole for part in parts)


def test_wrong_number_of_group_weights_is_a_user_error(synthetic_data):
    with pytest.raises(UserError, match="got 2 weights for 4 groups"):
        pipeline.build_dataset(pipeline.train_csvs(synthetic_data, True), SIZE, 4, True, True, [1, 2])


def test_validation_order_is_the_same_every_pass_and_follows_the_csv(synthetic_data):
    dataset = batches(synthetic_data, "valid.csv", training=False, batch_size=5)
    first, second = ([images.numpy() for images, _ in dataset] for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    valid = pd.read_csv(synthetic_data / "csv_file" / "valid.csv")
    assert sum(len(b) for b in first) == len(valid) and min(len(b) for b in first) >= 5
    expected = cv2.resize(cv2.imread(str(synthetic_data / valid.image[0])), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    assert np.abs(first[0][0] * 255 - expected[:, :, ::-1]).max() <= 1


def test_resized_copies_are_written_once_and_renewed_when_the_source_changes_even_to_an_older_time(synthetic_data):
    csv_path = synthetic_data / "csv_file" / "valid.csv"
    table = pipeline.read_samples(csv_path)
    copies = disk_cache.resized_copies(table, csv_path, 40)
    mtimes = [os.stat(p).st_mtime_ns for p in copies.image]
    assert cv2.imread(copies.image[0]).shape == (40, 40, 3)
    assert set(np.unique(cv2.imread(copies["mask"][0], cv2.IMREAD_UNCHANGED))) <= {0, 255}
    disk_cache.resized_copies(table, csv_path, 40)
    assert [os.stat(p).st_mtime_ns for p in copies.image] == mtimes
    os.utime(table.image[0], ns=(mtimes[0] - 10**9, mtimes[0] - 10**9))  # replaced by an older file (`cp -p`)
    disk_cache.resized_copies(table, csv_path, 40)
    assert os.stat(copies.image[0]).st_mtime_ns == mtimes[0] - 10**9  # rewritten, with its source's time
    assert [os.stat(p).st_mtime_ns for p in copies.image[1:]] == mtimes[1:]


def test_missing_csv_or_listed_file_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="train.csv does not exist: run data_preparation.py"):
        pipeline.read_samples(tmp_path / "csv_file" / "train.csv")
    (tmp_path / "csv_file").mkdir()
    pd.DataFrame({"image": ["png/gone.png"], "mask": ["png/gone_mask.png"]}).to_csv(tmp_path / "csv_file/x.csv")
    with pytest.raises(UserError, match="lists 2 missing files, first .*gone.png"):
        pipeline.read_samples(tmp_path / "csv_file" / "x.csv")


def test_an_empty_csv_is_a_user_error(tmp_path):
    (tmp_path / "csv_file").mkdir()
    (tmp_path / "csv_file" / "valid.csv").write_text("image,mask,group,height,width,foreground\n")
    with pytest.raises(UserError, match="lists no image/mask pairs"):
        pipeline.build_dataset([tmp_path / "csv_file" / "valid.csv"], SIZE, 4, training=False)


@pytest.fixture
def own_copy(synthetic_data, tmp_path) -> Path:
    """A copy of the prepared synthetic data (without its caches), for tests that change its sources."""
    shutil.copytree(synthetic_data, tmp_path / "data", ignore=shutil.ignore_patterns(disk_cache.CACHE_FOLDER))
    return tmp_path / "data"


def decoded_records(files: list, shard: tuple[int, int] = (1, 0)) -> list[tuple[np.ndarray, np.ndarray]]:
    records = tfrecord_cache.record_dataset(files, training=False, shard=shard)
    return [(tf.io.decode_image(i).numpy(), tf.io.decode_image(m).numpy()) for i, m in records.as_numpy_iterator()]


def test_records_hold_the_bmp_cache_masks_exactly_and_its_images_within_jpeg_error(synthetic_data, monkeypatch):
    monkeypatch.setattr(tfrecord_cache, "MIN_SHARD_RECORDS", 3)  # several files, read back in turn
    csv_path = synthetic_data / "csv_file" / "valid.csv"
    table = pipeline.read_samples(csv_path)
    files = tfrecord_cache.tfrecord_shards(table, csv_path, SIZE)
    assert len(files) > 1 and files[0].path.parent == synthetic_data / "cache" / f"{SIZE}px-tfrecord" / "valid"
    copies = disk_cache.resized_copies(table, csv_path, SIZE)
    records = decoded_records(files)
    assert len(records) == len(table)
    for (image, mask), bmp_image, bmp_mask in zip(records, copies.image, copies["mask"]):  # in the CSV's order
        assert np.array_equal(mask[..., 0], cv2.imread(bmp_mask, cv2.IMREAD_UNCHANGED))
        assert np.abs(image.astype(int) - cv2.imread(bmp_image)[..., ::-1]).mean() < 3


def test_masks_are_stored_as_png_never_jpeg(synthetic_data):
    csv_path = synthetic_data / "csv_file" / "valid.csv"
    files = tfrecord_cache.tfrecord_shards(pipeline.read_samples(csv_path), csv_path, SIZE)
    for image, mask in tfrecord_cache.record_dataset(files, training=False).as_numpy_iterator():
        assert image[:3] == b"\xff\xd8\xff" and mask[:8] == b"\x89PNG\r\n\x1a\n"
        assert set(np.unique(tf.io.decode_image(mask).numpy())) == {0, 255}  # a JPEG mask blurs its edges


def shard_times(files: list) -> list[int]:
    return [f.path.stat().st_mtime_ns for f in files]


def test_shards_are_rewritten_exactly_when_a_source_or_the_table_changes(own_copy, monkeypatch):
    monkeypatch.setattr(tfrecord_cache, "MIN_SHARD_RECORDS", 3)
    csv_path = own_copy / "csv_file" / "valid.csv"
    table = pipeline.read_samples(csv_path)
    files = tfrecord_cache.tfrecord_shards(table, csv_path, SIZE)
    times = shard_times(files)
    assert shard_times(tfrecord_cache.tfrecord_shards(table, csv_path, SIZE)) == times  # unchanged: not written
    before = os.stat(table.image[1]).st_mtime_ns - 10**9
    os.utime(table.image[1], ns=(before, before))  # replaced by an older file (`cp -p`); row 1 is in file 1
    assert [a == b for a, b in zip(shard_times(tfrecord_cache.tfrecord_shards(table, csv_path, SIZE)), times)] == [
        i != 1 for i in range(len(files))
    ]
    flipped = cv2.flip(cv2.imread(table.image[0]), 1)
    cv2.imwrite(table.image[0], flipped)  # new content
    first = decoded_records(tfrecord_cache.tfrecord_shards(table, csv_path, SIZE))[0][0]
    expected = cv2.resize(flipped, (SIZE, SIZE), interpolation=cv2.INTER_AREA)[..., ::-1]
    assert np.abs(first.astype(int) - expected).mean() < 3
    shorter = tfrecord_cache.tfrecord_shards(table.iloc[:-3], csv_path, SIZE)  # fewer rows: fewer files, old ones gone
    assert len(shorter) < len(files) and sorted(files[0].path.parent.glob("*.tfrecord")) == [f.path for f in shorter]
    assert len(decoded_records(shorter)) == len(table) - 3


@pytest.mark.parametrize("min_records, several_files", [(3, True), (100, False)])
def test_two_workers_read_disjoint_shares_that_cover_every_sample_once(synthetic_data, monkeypatch, min_records,
                                                                       several_files):  # fmt: skip
    monkeypatch.setattr(tfrecord_cache, "MIN_SHARD_RECORDS", min_records)
    csv_path = synthetic_data / "csv_file" / "train.csv"
    files = tfrecord_cache.tfrecord_shards(pipeline.read_samples(csv_path), csv_path, SIZE)
    assert (len(files) >= 2) == several_files
    every = [i for i, _ in tfrecord_cache.record_dataset(files, training=False).as_numpy_iterator()]
    shares = [
        [i for i, _ in tfrecord_cache.record_dataset(files, False, shard=(2, w)).as_numpy_iterator()] for w in (0, 1)
    ]
    assert len(set(every)) == len(every) and sorted(shares[0] + shares[1]) == sorted(every)
    own = [sum(f.records for f in tfrecord_cache.worker_files(files, (2, w))) for w in (0, 1)]
    assert [len(s) for s in shares] == own
    endless = tfrecord_cache.record_dataset(files, training=True, seed=1, shard=(2, 1)).take(10 * len(shares[1]))
    assert {i for i, _ in endless.as_numpy_iterator()} == set(shares[1])  # shuffled, and still its own share
    with pytest.raises(UserError, match="worker 2 of 2 does not exist"):
        tfrecord_cache.worker_files(files, (2, 2))


@pytest.mark.parametrize("training", [True, False])
def test_tfrecord_batches_are_like_the_bmp_ones(synthetic_data, training):
    bmp, tfrecord = (
        batches(synthetic_data, "valid.csv", training, cache_format=f, seed=3) for f in ("bmp", "tfrecord")
    )
    assert tfrecord.element_spec == bmp.element_spec
    (images, masks), (bmp_images, bmp_masks) = next(iter(tfrecord)), next(iter(bmp))
    assert images.shape == bmp_images.shape and masks.shape == bmp_masks.shape and images.dtype == bmp_images.dtype
    assert set(np.unique(masks.numpy())) == {0.0, 1.0} and 0 <= float(tf.reduce_min(images))
    if not training:  # the same samples in the same order
        assert float(tf.reduce_mean(tf.abs(images - bmp_images))) < 3 / 255


def test_balance_with_tfrecords_keeps_one_shard_folder_per_group(synthetic_data):
    csvs = pipeline.train_csvs(synthetic_data, balance="groups")
    dataset, n = pipeline.build_dataset(csvs, SIZE, 4, training=True, balance=True, cache_format="tfrecord")
    assert n == len(pd.read_csv(synthetic_data / "csv_file" / "train.csv"))
    assert next(iter(dataset))[0].shape == (4, SIZE, SIZE, 3)
    folders = sorted(p.name for p in (synthetic_data / "cache" / f"{SIZE}px-tfrecord").iterdir())
    assert {f"train_group_{g}" for g in "abcd"} <= set(folders)


def test_a_full_disk_or_a_source_that_does_not_decode_while_writing_records_is_a_user_error(own_copy, monkeypatch):
    csv_path = own_copy / "csv_file" / "valid.csv"
    table = pipeline.read_samples(csv_path)
    Path(table["mask"][2]).write_bytes(b"not a PNG")
    with pytest.raises(UserError, match=f"{table['mask'][2]} does not decode"):
        tfrecord_cache.tfrecord_shards(table, csv_path, SIZE)

    def full(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "x.tfrecord; No space left on device")

    monkeypatch.setattr(tfrecord_cache, "encoded_record", full)  # the forked workers inherit it
    with pytest.raises(UserError, match=r"cannot write the TFRecord cache into .*64px-tfrecord/valid: .*No space left"):
        tfrecord_cache.tfrecord_shards(table, csv_path, SIZE)
    assert not list((own_copy / "cache" / f"{SIZE}px-tfrecord" / "valid").glob("*.tfrecord*"))  # no half file


def test_each_thread_copies_the_transform_once_and_a_seed_repeats_the_batches(synthetic_data, monkeypatch):
    deepcopy, copies = copy.deepcopy, []

    def counting(thing, *args):
        copies.extend([thing] if isinstance(thing, A.Compose) else [])
        return deepcopy(thing, *args)

    monkeypatch.setattr(copy, "deepcopy", counting)
    first, second = (
        [b.numpy() for b, _ in batches(synthetic_data, "train.csv", True, 8, seed=5).take(4)] for _ in "ab"
    )
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert len(copies) <= 2 * (
        os.cpu_count() + 2
    )  # a copy for every sample (over 64 here) made the loader about 40% slower


def test_the_transforms_of_a_compose_draw_independently():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    encoded = tf.io.encode_png(image), tf.io.encode_png(np.zeros((16, 16, 1), np.uint8))
    flips = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    load = augmentation.augment_function(flips, 16, seed=0)
    views = {"none": image, "left-right": image[:, ::-1], "upside-down": image[::-1], "both": image[::-1, ::-1]}
    seen = [
        next(name for name, view in views.items() if np.array_equal(load(tf.constant(i, tf.int64), encoded)[0], view))
        for i in range(400)
    ]
    for name in views:  # each a quarter; with a seed each, the transforms drew alike: only none or both
        assert abs(seen.count(name) / 400 - 0.25) <= 0.07, name


def patch_sources(folder: Path, image: np.ndarray, mask: np.ndarray) -> tuple[str, str]:
    """Write an RGB image and a 2-D mask as PNGs, then as patch sources at scale 1 the way the loader does."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, pixels, is_mask in (("image", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), False), ("mask", mask, True)):
        source, target = folder / f"{name}.png", folder / "copies" / f"{name}.npy"
        cv2.imwrite(str(source), pixels)
        write_patch_copy((str(source), str(target), is_mask), scale=1.0)
        paths.append(str(target))
    return paths[0], paths[1]


def test_crops_keep_image_and_mask_aligned_and_pad_small_images(tmp_path):
    rng = np.random.default_rng(0)
    patches = Patches(64, foreground_share=0.5)
    for height, width in ((300, 200), (40, 50)):  # the second is smaller than a patch: padded
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        mask = (image[..., 0] > 127).astype(np.uint8) * 255  # a mask that follows the image's red channel
        paths = patch_sources(tmp_path / f"{height}", image, mask)
        assert np.array_equal(np.load(paths[0]), image)  # RGB, as TensorFlow decodes the BMP copies
        for _ in range(50):
            crop_image, crop_mask = read_crop(*paths, patches, rng)
            assert crop_image.shape == (64, 64, 3) and crop_mask.shape == (64, 64, 1)
            assert np.array_equal(crop_mask, (crop_image[..., :1] > 127).astype(np.uint8) * 255)
    assert crop_image[:12].max() == 0 and crop_image[12:52, 7:57].all(axis=-1).any()  # padded by 12 rows, 7 columns


def test_a_crop_reads_only_its_window_of_a_large_image(tmp_path):
    import tracemalloc

    image = np.random.default_rng(0).integers(0, 256, (3000, 3000, 3), dtype=np.uint8)  # 27 MB
    mask = np.zeros((3000, 3000), np.uint8)
    mask[1000:1100, 2000:2100] = 255
    paths = patch_sources(tmp_path, image, mask)
    patches = Patches(64, foreground_share=1.0)
    tracemalloc.start()
    crop_image, crop_mask = read_crop(*paths, patches, np.random.default_rng(1))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    locations = np.load(foreground_file(paths[1]))
    top, left = crop_corner(mask.shape, locations, 64, 1.0, np.random.default_rng(1))
    assert crop_mask.any() and np.array_equal(crop_image, image[top : top + 64, left : left + 64])
    assert peak < 2_000_000  # the crop's rows are 0.8 MB with the mask's; the whole image would be 27 MB


@pytest.mark.parametrize("share", [0.0, 0.33, 1.0])
def test_the_foreground_share_of_crops_holds_over_2000_draws(share):
    mask = np.zeros((1000, 1000), np.uint8)
    mask[600:610, 300:310] = 255  # 0.01% of the image: a random 64 px crop holds some of it 0.6% of the time
    locations = foreground_locations(mask)
    rng = np.random.default_rng(1)
    corners = [crop_corner(mask.shape, locations, 64, share, rng) for _ in range(2000)]
    holding = np.mean([mask[top : top + 64, left : left + 64].any() for top, left in corners])
    assert abs(holding - share) <= 0.05


def test_patch_batches_are_crops_of_the_rescaled_copies(synthetic_data):
    patches = Patches(32, scale=0.5)
    train = batches(synthetic_data, "train.csv", training=True, patches=patches)
    valid = batches(synthetic_data, "valid.csv", training=False, patches=patches)
    assert next(iter(train))[0].shape == (4, 32, 32, 3) and next(iter(valid))[0].shape[1:] == (32, 32, 3)
    relative = Path(pd.read_csv(synthetic_data / "csv_file" / "train.csv").image[0])
    photo = cv2.imread(str(synthetic_data / relative))
    copy = np.load(synthetic_data / "cache" / "scale0.5" / relative.with_suffix(".npy"))
    assert copy.shape == (round(photo.shape[0] * 0.5), round(photo.shape[1] * 0.5), 3)


def test_foreground_locations_are_all_the_pixels_or_a_uniform_sample():
    mask = np.zeros((500, 500), np.uint8)
    mask[10:13, 10:13] = 255  # 9 pixels
    mask[400:409, 300:309] = 255  # 81 pixels: 90% of the foreground
    locations = foreground_locations(mask)
    assert sorted(map(tuple, locations)) == sorted(zip(*np.nonzero(mask)))
    rng = np.random.default_rng(2)
    corners = [crop_corner(mask.shape, locations, 2, 1.0, rng) for _ in range(2000)]
    assert abs(np.mean(np.array(corners)[:, 0] >= 399) - 0.9) <= 0.03  # each location drawn alike
    large = np.zeros((2000, 2000), np.uint8)
    large[:, :100] = 255  # 200,000 pixels: a sample of 10,000
    large[:, 1900:] = 255  # another 200,000
    sample = foreground_locations(large)
    assert len(sample) == 10_000 and large[sample[:, 0], sample[:, 1]].all()
    assert abs(np.mean(sample[:, 1] >= 1900) - 0.5) <= 0.02
    assert len(foreground_locations(np.zeros((5, 5), np.uint8))) == 0
