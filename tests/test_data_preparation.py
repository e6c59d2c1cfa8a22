"""data_preparation.py on the real nails set, on broken copies of it, and on generated data."""

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import data_preparation as dp


def prepare(data_root: Path, *flags: str) -> None:
    dp.main(["--data_root", str(data_root), "--workers", "2", *flags])


def csv(data_root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(data_root / "csv_file" / name, keep_default_na=False)


def sha256_of_tree(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


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


def test_changed_original_and_changed_threshold_are_converted_again(nails, capsys):
    prepare(nails)
    first_png = sorted((nails / "png" / "images").iterdir())[0]
    os.utime(first_png, (0, 0))  # older than its original, as if the original had changed since
    capsys.readouterr()
    prepare(nails)
    assert "1 files converted" in capsys.readouterr().out
    prepare(nails, "--mask_threshold", "200")
    assert "52 files converted" in capsys.readouterr().out  # the masks, not the images


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


def test_layout_with_no_pair_exits_2(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        prepare(tmp_path)
    assert exit_info.value.code == 2
    assert "no usable image/mask pair" in capsys.readouterr().err


def test_image_conversion_widens_gray_drops_alpha_and_scales_16_bit(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgba = np.dstack([np.full((8, 8, 3), 7, np.uint8), np.zeros((8, 8), np.uint8)])
    deep = np.full((8, 8, 3), 65535, np.uint16)
    for name, array in (("gray.png", gray), ("rgba.png", rgba), ("deep.tif", deep)):
        cv2.imwrite(str(tmp_path / name), array)
    assert np.array_equal(dp.to_rgb(dp.read_image(tmp_path / "gray.png")), np.dstack([gray] * 3))
    assert np.array_equal(dp.to_rgb(dp.read_image(tmp_path / "rgba.png")), np.full((8, 8, 3), 7))
    assert np.array_equal(dp.to_rgb(dp.read_image(tmp_path / "deep.tif")), np.full((8, 8, 3), 255))


def test_masks_become_0_and_255():
    zero_one = np.array([[0, 1], [1, 0]], np.uint8)
    noisy = np.array([[3, 250], [128, 120]], np.uint8)
    red_on_black = np.zeros((2, 2, 3), np.uint8)
    red_on_black[0, 0, 2] = 255
    assert dp.to_binary_mask(zero_one, 127).tolist() == [[0, 255], [255, 0]]
    assert dp.to_binary_mask(noisy, 127).tolist() == [[0, 255], [255, 0]]
    assert dp.to_binary_mask(red_on_black, 127).tolist() == [[255, 0], [0, 0]]


def test_truncated_jpeg_is_detected():
    ok, encoded = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = encoded.tobytes()
    assert not dp.is_truncated_jpeg(data)
    assert dp.is_truncated_jpeg(data[: len(data) // 2])


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
