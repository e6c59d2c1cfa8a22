"""Several classes in data_preparation.py: label masks by value or by colour, the ignored value, the summary and the
class list that train.py and predict.py read, and the generated 3-class demo set; the loader's label masks and its
balance of classes."""

import json
from pathlib import Path

from segtf.dataset import pipeline
from segtf.dataset.classes import IGNORED, read_class_table, read_classes

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import prepare
from PIL import Image


def write_pair(data_root: Path, name: str, mask: np.ndarray, mask_suffix: str = ".png") -> None:
    """An image of noise and the given mask, under DATA/images and DATA/masks."""
    rng = np.random.default_rng(len(name))
    for folder, array, suffix in (("images", rng.integers(0, 256, (*mask.shape[:2], 3)), ".png"),
                                  ("masks", mask, mask_suffix)):  # fmt: skip
        (data_root / folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data_root / folder / f"{name}{suffix}"), np.asarray(array, np.uint8))


def prepared(data_root: Path) -> pd.DataFrame:
    tables = [pd.read_csv(data_root / "csv_file" / f"{split}.csv") for split in ("train", "valid")]
    return pd.concat(tables).set_index("image")


def rejected(data_root: Path) -> dict:
    table = pd.read_csv(data_root / "csv_file" / "rejected.csv")
    return dict(zip(table["mask"], table.reason))


def label(data_root: Path, name: str) -> np.ndarray:
    return cv2.imread(str(data_root / "png" / "masks" / f"{name}.png"), cv2.IMREAD_UNCHANGED)


def stripes(values: list[int], side: int = 24) -> np.ndarray:
    """A mask of horizontal stripes, one a value, of equal height."""
    return np.repeat(np.array(values, np.uint8), side // len(values))[:, None].repeat(side, axis=1)


def test_label_masks_keep_their_classes_and_the_summary_counts_them(tmp_path, capsys):
    write_pair(tmp_path, "a", stripes([0, 1, 2, 255]))
    write_pair(tmp_path, "b", stripes([0, 0, 1, 1]))
    write_pair(tmp_path, "c", stripes([0, 5, 1, 2]))  # 5 is no class
    write_pair(tmp_path, "d", stripes([0, 1, 2, 2]), ".jpg")  # JPEG changes values
    prepare(tmp_path, "--classes", "3", "--ignore_value", "255", "--valid_fraction", "0")
    assert np.array_equal(label(tmp_path, "a"), stripes([0, 1, 2, IGNORED]))
    assert np.array_equal(label(tmp_path, "b"), stripes([0, 0, 1, 1]))
    reasons = rejected(tmp_path)
    assert "outside the classes 0 to 2 or --ignore_value 255: 5" in reasons["masks/c.png"]
    assert "give PNG masks" in reasons["masks/d.jpg"]
    table = prepared(tmp_path)
    assert list(table.loc["png/images/a.png", ["class_0", "class_1", "class_2"]]) == [0.25, 0.25, 0.25]
    assert table.loc["png/images/a.png", "foreground"] == 0.5  # the ignored quarter is no foreground
    assert read_classes(tmp_path) == ["background", "class_1", "class_2"]
    summary = capsys.readouterr().out
    assert "0 background 37.50% in 2; 1 class_1 37.50% in 2; 2 class_2 12.50% in 1; ignored 12.50%" in summary


def test_colour_masks_become_labels_by_the_class_colors_table(tmp_path):
    table = tmp_path / "colors.csv"
    table.write_text("name,red,green,blue\nbackground,0,0,0\nplate,255,0,0\nlunula,0,0,255\nignore,255,255,255\n")
    bgr = {0: (0, 0, 0), 1: (0, 0, 255), 2: (255, 0, 0), IGNORED: (255, 255, 255)}  # OpenCV writes BGR
    classes = stripes([0, 1, 2, IGNORED])
    data = tmp_path / "data"
    write_pair(data, "a", np.array([bgr[v] for v in classes.ravel()]).reshape(*classes.shape, 3))
    write_pair(data, "b", np.full((24, 24, 3), (0, 255, 0)))  # green is no class
    prepare(data, "--class_colors", str(table), "--valid_fraction", "0")
    assert np.array_equal(label(data, "a"), classes)
    assert "not in --class_colors: (0, 255, 0)" in rejected(data)["masks/b.png"]
    assert read_classes(data) == ["background", "plate", "lunula"]
    kept = read_class_table(data)  # for train.py to record, and predict.py to draw and score by
    assert kept.colors == ((0, 0, 0), (255, 0, 0), (0, 0, 255)) and kept.ignore_color == (255, 255, 255)


def test_two_classes_read_masks_by_the_binary_rules(tmp_path):
    write_pair(tmp_path, "a", stripes([0, 255, 0, 255]), ".jpg")
    prepare(tmp_path, "--classes", "2", "--valid_fraction", "0")
    assert np.array_equal(label(tmp_path, "a"), stripes([0, 1, 0, 1]))
    prepare(tmp_path)  # one class again: binary masks, and no class list
    assert np.array_equal(label(tmp_path, "a"), stripes([0, 255, 0, 255]))
    assert read_classes(tmp_path) is None and "class_0" not in prepared(tmp_path).columns


@pytest.mark.parametrize(
    "flags, message",
    [(["--ignore_value", "255"], "--ignore_value needs --classes"),
     (["--classes", "3", "--foreground_values", "1"], "with --classes above 2 the values are the classes"),
     (["--classes", "3", "--ignore_value", "1"], "--ignore_value 1 is one of the classes 0 to 2")],
)  # fmt: skip
def test_contradicting_class_flags_are_one_line(flags, message, tmp_path, capsys):
    write_pair(tmp_path, "a", stripes([0, 1, 2, 2]))
    with pytest.raises(SystemExit) as exit_info:
        prepare(tmp_path, *flags)
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # argparse adds its usage
    assert exit_info.value.code == 2 and len(errors) == 1 and message in errors[0]


def test_the_generated_three_class_set_has_nails_and_lunulae(tmp_path):
    prepare(tmp_path / "data", "--synthetic", "12", "--classes", "3")
    table = prepared(tmp_path / "data")
    assert len(table) == 12 and (table.class_1 > 0).all() and (table.class_2 > 0).all()
    for mask in table["mask"]:
        assert set(np.unique(cv2.imread(str(tmp_path / "data" / mask), cv2.IMREAD_UNCHANGED))) == {0, 1, 2}
    record = json.loads((tmp_path / "data" / "csv_file" / "classes.json").read_text())
    assert record == {"classes": ["background", "class_1", "class_2"], "colors": [], "ignore_color": None,
                      "ignored": IGNORED}  # fmt: skip


@pytest.mark.parametrize("loader", [{}, {"cache_format": "tfrecord"}, {"resize_first": False}])
def test_resized_and_augmented_label_masks_hold_only_class_values(loader, tmp_path):
    """Class 2 and ignored pixels beside the background, never class 1: any interpolation but the nearest would
    put a 1 (or values between 2 and 255) on their edges."""
    rng = np.random.default_rng(0)
    for index in range(8):
        mask = np.zeros((int(rng.integers(70, 130)), int(rng.integers(70, 130))), np.uint8)
        for value in (2, 255):
            top, left = rng.integers(0, 50, 2)
            mask[top : top + 30, left : left + 25] = value
        write_pair(tmp_path, f"image_{index}", mask)
    prepare(tmp_path, "--classes", "3", "--ignore_value", "255", "--valid_fraction", "0")
    csv = tmp_path / "csv_file" / "train.csv"
    for training in (True, False):
        batches, _ = pipeline.build_dataset([csv], 48, 4, training=training, augment="any_orientation", classes=3,
                                            seed=1, **loader)  # fmt: skip
        values = np.unique(np.concatenate([masks.numpy().ravel() for _, masks in batches.take(4)]))
        assert set(values) == {0, 2, IGNORED}, (training, values)


def test_balance_classes_draws_a_rare_class_often(tmp_path):
    for index in range(10):  # class 2 in one image of ten
        write_pair(tmp_path, f"image_{index}", stripes([0, 1, 2 if index == 0 else 1, 0], side=32))
    prepare(tmp_path, "--classes", "3", "--valid_fraction", "0")
    csvs = pipeline.train_csvs(tmp_path, "classes")
    assert [p.name for p in csvs] == ["train.csv", "classes_train_1.csv", "classes_train_2.csv"]
    shares = {}
    for balance in (False, True):
        batches, _ = pipeline.build_dataset(csvs if balance else csvs[:1], 32, 10, training=True, balance=balance,
                                            classes=3, seed=0, augment="none")  # fmt: skip
        masks = np.concatenate([masks.numpy() for _, masks in batches.take(30)])
        shares[balance] = np.mean([(mask == 2).any() for mask in masks])
    assert shares[False] == pytest.approx(0.1, abs=0.05) and shares[True] == pytest.approx(0.4, abs=0.08)


def write_palette_mask(path: Path, indices: np.ndarray) -> None:
    """A palette PNG (mode P) of indices, with Pascal VOC's first colours: black, dark red, dark green."""
    image = Image.fromarray(indices)  # mode L, which putpalette turns into P
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [224, 224, 192] * 253)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def test_palette_masks_are_read_by_their_indices_as_classes_or_as_a_binary_mask(tmp_path):
    for classes in (3, 1):
        data = tmp_path / f"classes{classes}"
        write_pair(data, "a", stripes([0, 1, 2, 0] if classes == 3 else [0, 1, 1, 0]))
        write_palette_mask(data / "masks" / "a.png", stripes([0, 1, 2, 0] if classes == 3 else [0, 1, 1, 0]))
        prepare(data, "--classes", str(classes), "--valid_fraction", "0")
        expected = stripes([0, 1, 2, 0]) if classes == 3 else stripes([0, 255, 255, 0])
        assert np.array_equal(label(data, "a"), expected)


def test_a_run_whose_every_pair_is_rejected_names_the_reasons_and_exits_2(tmp_path, capsys):
    write_pair(tmp_path, "a", stripes([0, 7]))
    write_pair(tmp_path, "b", stripes([0, 9]))
    with pytest.raises(SystemExit) as exit_info:
        prepare(tmp_path, "--classes", "3", "--valid_fraction", "0")
    assert exit_info.value.code == 2
    assert "2 rejected (mask has values outside the classes 0 to 2: 2)" in capsys.readouterr().err
