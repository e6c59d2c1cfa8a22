"""data_preparation.py on the real nails set, on broken copies of it, and on generated data; reading images, and
the files' atomic writes."""

import os
import struct
import threading
import zlib
from pathlib import Path

from segtf import files
from segtf.cli.prepare import main as prepare_main
from segtf.dataset.images import EXIF_ORIENTATION, is_truncated_jpeg, orient, read_image, to_rgb

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import run_training, sha256_of_tree
from PIL import Image, ImageOps


def prepare(data_root: Path, *flags: str) -> None:
    prepare_main(["--data_root", str(data_root), "--workers", "2", *flags])


def csv(data_root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(data_root / "csv_file" / name, keep_default_na=False)


def test_real_nails_are_paired_split_and_binarised(nails):
    originals = sha256_of_tree(nails)
    prepare(nails)
    train, valid = csv(nails, "train.csv"), csv(nails, "valid.csv")
    assert len(train) + len(valid) == 52
    assert len(train) + len(valid) == 52 and 6 <= len(valid) <= 16  # about --valid_fraction 0.2 of them
    assert set(train.image).isdisjoint(valid.image)
    assert list(train.columns) == ["image", "mask", "group", "height", "width", "foreground"]
    assert csv(nails, "train_default.csv").equals(train)
    assert csv(nails, "rejected.csv").empty
    for row in pd.concat([train, valid]).itertuples():
        mask = cv2.imread(str(nails / row.mask), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(nails / row.image), cv2.IMREAD_UNCHANGED)
        assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}
        assert image.shape == (row.height, row.width, 3) and image.dtype == np.uint8
        assert row.foreground == pytest.approx(np.count_nonzero(mask) / mask.size, abs=1e-6)
    assert {p: h for p, h in sha256_of_tree(nails).items() if p in originals} == originals


def test_second_run_rewrites_nothing_and_gives_identical_csvs(nails, capsys):
    prepare(nails)
    csvs = {p.name: p.read_bytes() for p in (nails / "csv_file").iterdir()}
    pngs = {p: p.stat().st_mtime_ns for p in (nails / "png").rglob("*.png")}
    capsys.readouterr()
    prepare(nails)
    assert "0 files converted" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (nails / "csv_file").iterdir()} == csvs
    assert {p: p.stat().st_mtime_ns for p in (nails / "png").rglob("*.png")} == pngs


def test_changed_content_and_changed_threshold_are_converted_again_whatever_the_times(nails, capsys):
    prepare(nails)
    first, second = sorted((nails / "labels").iterdir())[:2]
    os.utime(first, ns=(0, 10**9))  # touched back in time, the same content: nothing to do
    stale = second.stat().st_mtime_ns
    mask = cv2.imread(str(second))
    cv2.imwrite(str(second), 255 - mask)  # new content, given the old time back, as `cp -p` would
    os.utime(second, ns=(stale, stale))
    capsys.readouterr()
    prepare(nails)
    assert "2 files converted" in capsys.readouterr().out  # the changed mask's pair
    png = cv2.imread(str(nails / "png" / "labels" / (second.stem + ".png")), cv2.IMREAD_GRAYSCALE)
    assert np.count_nonzero(png) > png.size / 2  # the inverted mask, not the stale one
    prepare(nails, "--mask_threshold", "200")
    assert "104 files converted" in capsys.readouterr().out


def test_bad_files_are_rejected_with_reasons_and_the_rest_prepared(nails):
    images = sorted((nails / "images").iterdir())
    truncated, unmasked, resized = images[0], images[1], images[2]
    truncated.write_bytes(truncated.read_bytes()[:20000])
    (nails / "labels" / unmasked.name).unlink()
    mask_path = nails / "labels" / resized.name
    cv2.imwrite(str(mask_path), cv2.resize(cv2.imread(str(mask_path)), (50, 60)))
    prepare(nails)
    rejected = csv(nails, "rejected.csv").set_index("image").reason
    assert rejected.to_dict() == {
        f"images/{truncated.name}": "image is a truncated JPEG",
        f"images/{unmasked.name}": "no mask",
        f"images/{resized.name}": rejected[f"images/{resized.name}"],
    }
    assert rejected[f"images/{resized.name}"].startswith("size mismatch: ") and "50x60" in rejected.iloc[2]
    assert len(csv(nails, "train.csv")) + len(csv(nails, "valid.csv")) == 49


def test_orphan_mask_and_unsupported_files_are_reported(nails):
    (nails / "images" / sorted(os.listdir(nails / "images"))[0]).unlink()
    (nails / "images" / "notes.txt").write_text("not an image")
    prepare(nails)
    reasons = sorted(csv(nails, "rejected.csv").reason)
    assert reasons == ["no image", "not an image file"]


@pytest.mark.parametrize("make_root", [lambda tmp: tmp / "missing", lambda tmp: tmp])
def test_missing_or_empty_data_root_exits_2_with_one_line(tmp_path, capsys, make_root):
    data_root = make_root(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        prepare(data_root)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(data_root) in error


def test_layout_with_no_pair_exits_2_with_the_reasons_and_train_py_calls_the_dataset_empty(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        prepare(tmp_path)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "no usable image/mask pair" in error
    assert f"1 rejected (no mask: 1), see {tmp_path / 'csv_file' / 'rejected.csv'}" in error
    with pytest.raises(SystemExit) as exit_info:
        run_training(tmp_path, tmp_path / "work")
    assert exit_info.value.code == 2
    assert f"{tmp_path}: the dataset is empty, data_preparation.py prepared no pair" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()  # a refused run leaves nothing behind, not even its lock


def test_image_conversion_widens_gray_drops_alpha_and_scales_16_bit(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgba = np.dstack([np.full((8, 8, 3), 7, np.uint8), np.zeros((8, 8), np.uint8)])
    deep = np.full((8, 8, 3), 65535, np.uint16)
    for name, array in (("gray.png", gray), ("rgba.png", rgba), ("deep.tif", deep)):
        cv2.imwrite(str(tmp_path / name), array)
    assert np.array_equal(to_rgb(read_image(tmp_path / "gray.png")), np.dstack([gray] * 3))
    assert np.array_equal(to_rgb(read_image(tmp_path / "rgba.png")), np.full((8, 8, 3), 7))
    assert np.array_equal(to_rgb(read_image(tmp_path / "deep.tif")), np.full((8, 8, 3), 255))


def write_mask(path: Path, array: np.ndarray, orientation: int = 1) -> None:
    """Any array to a file by its suffix; with an EXIF orientation tag through Pillow (JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if orientation == 1:
        cv2.imwrite(str(path), array)
        return
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(array).save(path, exif=exif, quality=95)


TRUTH = np.zeros((24, 32), bool)
TRUTH[4:12, 6:20] = True
# (mask file name, how it holds TRUTH): each rule of to_binary_mask, through a real file
MASK_CASES = {
    "zero_255.png": TRUTH * np.uint8(255),
    "zero_one.png": TRUTH.astype(np.uint8),
    "zero_one_16bit.png": TRUTH.astype(np.uint16),
    "full_16bit.png": TRUTH * np.uint16(65535),
    "zero_one_jpeg.jpg": TRUTH.astype(np.uint8),
    "zero_255_jpeg.jpg": TRUTH * np.uint8(255),
    "red_on_black.png": np.dstack([np.zeros_like(TRUTH, np.uint8)] * 2 + [TRUTH * np.uint8(255)]),
    "alpha.png": np.dstack([np.zeros_like(TRUTH, np.uint8)] * 3 + [TRUTH * np.uint8(255)]),
}


def flat_dataset(root: Path, masks: dict, image: np.ndarray = None) -> Path:
    for name, mask in masks.items():
        write_mask(root / "masks" / name, mask)
        write_mask(root / "images" / (Path(name).stem + ".png"), np.zeros((*TRUTH.shape, 3), np.uint8))
    return root


def prepared_masks(root: Path) -> dict:
    table = pd.concat([t for t in (csv(root, "train.csv"), csv(root, "valid.csv")) if len(t)])
    return {Path(m).stem: cv2.imread(str(root / m), cv2.IMREAD_UNCHANGED) for m in table["mask"]}


def test_each_kind_of_mask_becomes_its_foreground_in_0_and_255(tmp_path):
    prepare(flat_dataset(tmp_path / "data", MASK_CASES))
    masks = prepared_masks(tmp_path / "data")
    assert sorted(masks) == sorted(Path(n).stem for n in MASK_CASES)
    for name, mask in masks.items():
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}, name
        if name.endswith("jpeg"):  # lossy: a few edge pixels move
            assert np.count_nonzero((mask > 0) & TRUTH) / np.count_nonzero((mask > 0) | TRUTH) > 0.85, name
        else:
            assert np.array_equal(mask > 0, TRUTH), name


def test_label_masks_need_foreground_values_and_empty_masks_are_counted(tmp_path, capsys):
    labels = TRUTH.astype(np.uint8) + np.pad(np.full((4, 4), 2, np.uint8), ((16, 4), (24, 4)))  # 0, 1 and 2
    data = flat_dataset(tmp_path / "data", {"labels.png": labels, "empty.png": np.zeros_like(TRUTH, np.uint8),
                                            "zero_one.png": TRUTH.astype(np.uint8)})  # fmt: skip
    prepare(data)
    assert csv(data, "rejected.csv").reason.tolist() == [
        "mask has 3 values (0, 1, 2): name the foreground with --foreground_values (a label mask), "
        "or binarise it with --mask_threshold"
    ]
    assert "empty masks: 1, kept" in capsys.readouterr().out
    prepare(data, "--foreground_values", "2", "--drop_empty")
    masks = prepared_masks(data)
    assert sorted(masks) == ["labels"] and np.count_nonzero(masks["labels"]) == 16
    assert csv(data, "rejected.csv").reason.tolist() == ["empty mask (--drop_empty)"] * 2  # zero_one: no 2
    assert sorted(p.stem for p in (data / "png" / "masks").rglob("*.png")) == ["labels"]  # none of the rejected
    assert "1 pair prepared, 2 files converted" in capsys.readouterr().out  # the rule changed: labels again


def test_exif_orientation_is_applied_alike_or_the_pair_is_rejected_naming_exif(tmp_path):
    stored = np.zeros((24, 32, 3), np.uint8)
    stored[TRUTH] = 255
    shown = np.rot90(stored, -1)  # what orientation 6 shows: the stored pixels turned 90° clockwise
    cases = {  # name: (image orientation, mask as drawn, mask orientation)
        "drawn_on_shown": (6, shown[:, :, 0], 1),
        "tagged_alike": (6, stored[:, :, 0], 6),
        "ambiguous_180": (3, stored[:, :, 0], 1),
    }
    for name, (orientation, mask, mask_orientation) in cases.items():
        write_mask(tmp_path / "data" / "images" / f"{name}.jpg", stored, orientation)
        write_mask(tmp_path / "data" / "masks" / f"{name}.{'jpg' if mask_orientation > 1 else 'png'}",
                   mask, mask_orientation)  # fmt: skip
    prepare(tmp_path / "data")
    masks = prepared_masks(tmp_path / "data")
    assert sorted(masks) == ["drawn_on_shown", "tagged_alike"]
    for name, mask in masks.items():
        image = cv2.imread(str(tmp_path / "data" / "png" / "images" / f"{name}.png"))
        assert image.shape[:2] == (32, 24) and np.array_equal(image[:, :, 0] > 127, mask > 0), name
    reason = csv(tmp_path / "data", "rejected.csv").reason.tolist()
    assert reason == ["mask EXIF orientation 1 differs from the image's 3 and its size fits both readings: "
                      "save image and mask with the same orientation"]  # fmt: skip


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillows_exif_transpose(orientation):
    stored = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = orientation
    image.info["exif"] = exif.tobytes()
    assert np.array_equal(orient(stored, orientation), np.asarray(ImageOps.exif_transpose(image)))


def test_truncated_jpeg_is_detected():
    ok, encoded = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = encoded.tobytes()
    assert not is_truncated_jpeg(data)
    assert is_truncated_jpeg(data[: len(data) // 2])


def test_synthetic_data_is_deterministic_grouped_and_mixed_format(tmp_path):
    prepare(tmp_path / "a", "--synthetic", "60")
    prepare(tmp_path / "b", "--synthetic", "60")
    for name in ("train.csv", "valid.csv"):
        assert (tmp_path / "a/csv_file" / name).read_bytes() == (tmp_path / "b/csv_file" / name).read_bytes()
    sizes = csv(tmp_path / "a", "train.csv").group.value_counts()
    assert list(sizes.index) == ["group_a", "group_b", "group_c", "group_d"]
    assert sizes.is_monotonic_decreasing and sizes.iloc[0] >= 4 * sizes.iloc[-1]
    assert {p.name for p in (tmp_path / "a/csv_file").glob("train_*.csv")} == {f"train_{g}.csv" for g in sizes.index}
    suffixes = {p.suffix for p in (tmp_path / "a/train").rglob("*.*")}
    assert suffixes == {".jpg", ".bmp", ".png"}
    assert csv(tmp_path / "a", "rejected.csv").empty


def test_synthetic_refuses_a_folder_holding_other_data(nails, capsys):
    before = sha256_of_tree(nails)
    with pytest.raises(SystemExit) as exit_info:
        prepare(nails, "--synthetic", "10")
    assert exit_info.value.code == 2 and "not empty" in capsys.readouterr().err
    assert sha256_of_tree(nails) == before


def test_flat_layout_split_follows_the_seed(tmp_path):
    prepare(tmp_path / "demo", "--synthetic", "30")
    flat = tmp_path / "flat"
    for pattern, folder in (("*/images/*/*", "images"), ("*/masks/*/*", "masks")):
        for path in (tmp_path / "demo").glob(pattern):
            (flat / folder / path.parent.name).mkdir(parents=True, exist_ok=True)
            (flat / folder / path.parent.name / path.name).write_bytes(path.read_bytes())
    prepare(flat, "--seed", "1")
    first = csv(flat, "valid.csv")
    prepare(flat, "--seed", "1")
    assert csv(flat, "valid.csv").equals(first)
    prepare(flat, "--seed", "2")
    assert not csv(flat, "valid.csv").equals(first)
    assert 0.1 < len(first) / (len(first) + len(csv(flat, "train.csv"))) < 0.3


def test_adding_photos_moves_no_earlier_photo_between_train_and_valid(nails):
    later = sorted((nails / "images").iterdir())[-5:]
    kept_aside = nails.parent / "later"
    for image in later:
        for path in (image, *(nails / "labels").glob(image.stem + ".*")):
            (kept_aside / path.parent.name).mkdir(parents=True, exist_ok=True)
            path.rename(kept_aside / path.parent.name / path.name)
    prepare(nails)
    before = {split: set(csv(nails, f"{split}.csv").image) for split in ("train", "valid")}
    for path in kept_aside.rglob("*.*"):
        path.rename(nails / path.parent.name / path.name)
    prepare(nails)
    after = {split: set(csv(nails, f"{split}.csv").image) for split in ("train", "valid")}
    assert before["train"] <= after["train"] and before["valid"] <= after["valid"]
    assert len(after["train"] | after["valid"]) == len(before["train"] | before["valid"]) + 5


def test_an_image_too_large_for_opencv_is_rejected_naming_its_size(tmp_path):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 40000, 30000, 8, 0, 0, 0, 0)  # a PNG header alone: 1.2 billion pixels
    huge = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    data = flat_dataset(tmp_path / "data", {"small.png": TRUTH * np.uint8(255), "huge.png": TRUTH * np.uint8(255)})
    (data / "images" / "huge.png").write_bytes(huge)
    prepare(data)
    assert csv(data, "rejected.csv").reason.tolist() == [
        "image is 40000x30000 pixels, more than OpenCV decodes (2^30): downscale it first"
    ]


def test_temporary_names_are_unique_to_each_process_and_thread(tmp_path, monkeypatch):
    replace, temporaries = os.replace, []
    monkeypatch.setattr(os, "replace", lambda source, target: temporaries.append(source) or replace(source, target))
    files.write_bytes(tmp_path / "x.png", b"1")
    worker = threading.Thread(target=files.write_bytes, args=(tmp_path / "x.png", b"2"))
    worker.start()
    worker.join()
    assert len(set(temporaries)) == 2 and all(str(os.getpid()) in p.name for p in temporaries)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"] and (tmp_path / "x.png").read_bytes() == b"2"


def test_a_mask_that_does_not_decode_is_named_as_the_mask(tmp_path):
    data = flat_dataset(tmp_path / "data", {"good.png": TRUTH * np.uint8(255), "bad.png": TRUTH * np.uint8(255)})
    (data / "masks" / "bad.png").write_bytes(b"not a png")
    prepare(data)
    assert csv(data, "rejected.csv").reason.tolist() == ["mask does not decode"]
