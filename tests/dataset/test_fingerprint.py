"""The dataset fingerprint: each measure on hand-drawn masks, the files data_preparation.py writes, reading them back
typed (and refusing malformed ones), and the summary's line."""

import json
from pathlib import Path

from segtf.dataset.classes import IGNORED
from segtf.dataset.fingerprint import (
    ClassFingerprint,
    Fingerprint,
    Spread,
    describe,
    fingerprint_path,
    pair_fingerprint,
    read_fingerprint,
    write_fingerprint,
)
from segtf.errors import UserError

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import prepare

ONE = ["foreground"]


def band(thickness: int, vertical: bool = False) -> np.ndarray:
    """A binary mask (0 and 255) of a straight line thickness pixels wide and 50 long, away from the edges."""
    mask = np.zeros((60, 60), np.uint8)
    mask[10 : 10 + thickness, 5:55] = 255
    return mask.T.copy() if vertical else mask


@pytest.mark.parametrize("vertical", [False, True])
@pytest.mark.parametrize("thickness", [1, 3, 5])
def test_a_line_is_as_wide_as_it_is_drawn(thickness, vertical):
    found = pair_fingerprint(band(thickness, vertical), ONE)
    assert found == {"foreground": {"share": thickness * 50 / 3600, "components": 1, "smallest": thickness * 50,
                                    "width": thickness}}  # fmt: skip


def test_a_disk_is_about_2r_minus_1_wide_and_one_object():
    radius = 10
    mask = cv2.circle(np.zeros((60, 60), np.uint8), (30, 30), radius, 255, -1)
    found = pair_fingerprint(mask, ONE)["foreground"]
    assert abs(found["width"] - (2 * radius - 1)) <= 1
    assert found["components"] == 1 and found["smallest"] == np.count_nonzero(mask)


def test_a_structure_ends_at_the_image_edge():
    edge = np.zeros((40, 40), np.uint8)
    edge[:, :5] = 255  # a 5-pixel band along the left edge
    assert pair_fingerprint(edge, ONE)["foreground"]["width"] == 5
    full = pair_fingerprint(np.full((20, 30), 255, np.uint8), ONE)["foreground"]
    assert full["share"] == 1 and 15 <= full["width"] <= 21  # about the height, not OpenCV's "infinitely far"


def test_components_are_8_connected_and_the_smallest_is_counted():
    mask = np.zeros((40, 40), np.uint8)
    mask[2:5, 2:5] = 255  # 9 pixels
    mask[20:30, 20:30] = 255  # 100 pixels
    mask[30, 30] = mask[31, 31] = 255  # touching the large square and each other at corners only: the same object
    found = pair_fingerprint(mask, ONE)["foreground"]
    assert found["components"] == 2 and found["smallest"] == 9
    assert found["share"] == 111 / 1600


def test_an_absent_class_has_no_size_and_an_empty_mask_no_class():
    labels = np.zeros((30, 30), np.uint8)
    labels[5:10, 5:20] = 1
    absent = {"share": 0.0, "components": 0, "smallest": None, "width": None}
    assert pair_fingerprint(labels, ["plate", "lunula"])["lunula"] == absent
    assert pair_fingerprint(np.zeros((30, 30), np.uint8), ONE) == {"foreground": absent}


def test_several_classes_each_by_its_label_and_the_ignored_label_in_none():
    labels = np.zeros((40, 40), np.uint8)
    labels[2:7, 2:30] = 1  # a plate 5 wide
    labels[20:23, 2:30] = 2  # a lunula 3 wide
    labels[30:40, 0:40] = IGNORED  # larger than both, touching neither
    labels[7:10, 2:30] = IGNORED  # touching the plate: were it counted, the plate would be 8 wide
    found = pair_fingerprint(labels, ["plate", "lunula"])
    assert list(found) == ["plate", "lunula"]
    assert found["plate"] == {"share": 140 / 1600, "components": 1, "smallest": 140, "width": 5}
    assert found["lunula"] == {"share": 84 / 1600, "components": 1, "smallest": 84, "width": 3}


def csv(data_root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(data_root / "csv_file" / name)


def test_prepared_data_has_a_row_a_pair_and_a_summary_of_the_training_pairs(synthetic_data):
    train, valid = csv(synthetic_data, "train.csv"), csv(synthetic_data, "valid.csv")
    pairs = csv(synthetic_data, "fingerprint.csv")
    assert list(pairs.columns) == ["image", "split", "height", "width", "foreground_share", "foreground_components",
                                   "foreground_smallest", "foreground_width"]  # fmt: skip
    assert sorted(pairs.image) == sorted([*train.image, *valid.image])
    assert sorted(pairs[pairs.split == "train"].image) == sorted(train.image)
    by_image = pairs.set_index("image")
    assert np.allclose(by_image.loc[train.image, "foreground_share"], train.foreground, atol=1e-6)
    row = by_image.loc[train.image[0]]
    mask = cv2.imread(str(synthetic_data / train["mask"][0]), cv2.IMREAD_UNCHANGED)
    measured = pair_fingerprint(mask, ONE)["foreground"]
    assert [row.foreground_components, row.foreground_smallest] == [measured["components"], measured["smallest"]]
    assert row.foreground_width == pytest.approx(measured["width"], abs=1e-6)

    summary = json.loads(fingerprint_path(synthetic_data).read_text())
    assert summary["pairs"] == len(train)
    training = pairs[pairs.split == "train"]
    present = training[training.foreground_components > 0]
    assert summary["classes"]["foreground"]["present_in"] == pytest.approx(len(present) / len(train))
    widths = np.percentile(present.foreground_width, [50, 10, 90])
    assert list(summary["classes"]["foreground"]["width"].values()) == pytest.approx(widths, abs=1e-5)
    assert summary["image_height"]["median"] == np.median(training.height)


def test_three_classes_are_fingerprinted_by_their_names(tmp_path):
    prepare(tmp_path / "three", "--synthetic", "10", "--classes", "3")
    summary = json.loads(fingerprint_path(tmp_path / "three").read_text())
    assert list(summary["classes"]) == ["class_1", "class_2"]
    columns = list(csv(tmp_path / "three", "fingerprint.csv").columns)
    assert columns[4:] == [f"class_{k}_{m}" for k in (1, 2) for m in ("share", "components", "smallest", "width")]


def test_two_classes_leave_the_ignored_pixels_out_though_read_as_binary_masks(tmp_path):
    labels = np.zeros((40, 40), np.uint8)
    labels[10:13, 5:35] = 1  # 3 wide
    labels[13:18, 5:35] = 255  # ignored, touching it: were it counted, 8 wide
    for folder, array in (("images", np.zeros((40, 40, 3), np.uint8)), ("masks", labels)):
        (tmp_path / "data" / folder).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "data" / folder / "a.png"), array)
    prepare(tmp_path / "data", "--classes", "2", "--ignore_value", "255", "--valid_fraction", "0")
    row = csv(tmp_path / "data", "fingerprint.csv").iloc[0]
    assert [row.class_1_share, row.class_1_components, row.class_1_smallest, row.class_1_width] == [
        pytest.approx(90 / 1600), 1, 90, 3]  # fmt: skip


def test_a_rerun_converting_nothing_writes_both_files_again_and_the_summary_says_them(tmp_path, capsys):
    data_root = tmp_path / "data"
    prepare(data_root, "--synthetic", "12")
    written = {name: (data_root / "csv_file" / name).read_bytes() for name in ("fingerprint.csv", "fingerprint.json")}
    for name in written:
        (data_root / "csv_file" / name).unlink()
    capsys.readouterr()
    prepare(data_root)
    out = capsys.readouterr().out
    assert "0 files converted" in out
    assert {name: (data_root / "csv_file" / name).read_bytes() for name in written} == written
    train = csv(data_root, "train.csv")
    assert f"  fingerprint: {len(train)} training pairs, images " in out
    assert "(median); foreground: in " in out
    assert f"  {describe(read_fingerprint(data_root))[0]}\n" in out


def training_row(mask: np.ndarray, split: str = "train") -> dict:
    return {"image": Path("/d/png/x.png"), "split": split, "height": mask.shape[0], "width": mask.shape[1],
            "fingerprint": pair_fingerprint(mask, ["plate", "lunula"])}  # fmt: skip


def test_the_summary_is_read_back_typed_and_a_class_in_no_training_pair_left_out(tmp_path):
    rows = []
    for k, thickness in enumerate((1, 3, 5, 7)):
        labels = (band(thickness) > 0).astype(np.uint8)
        rows.append({**training_row(labels), "image": tmp_path / "png" / f"{k}.png"})
    rows[0]["fingerprint"]["plate"] = pair_fingerprint(np.zeros((60, 60), np.uint8), ["plate", "lunula"])["plate"]
    lunula_in_valid = np.full((60, 60), 2, np.uint8)
    rows.append({**training_row(lunula_in_valid, "valid"), "image": tmp_path / "png" / "v.png"})
    write_fingerprint(tmp_path, rows, ["plate", "lunula"])
    assert list(json.loads(fingerprint_path(tmp_path).read_text())) == [
        "version", "pairs", "image_height", "image_width", "classes"]  # fmt: skip
    widths = np.percentile([3, 5, 7], [50, 10, 90])
    assert read_fingerprint(tmp_path) == Fingerprint(
        pairs=4,
        image_height=Spread(60.0, 60.0, 60.0),
        image_width=Spread(60.0, 60.0, 60.0),
        classes={"plate": ClassFingerprint(
            present_in=0.75,
            share=Spread(*np.percentile(np.array([150, 250, 350]) / 3600, [50, 10, 90])),
            components=Spread(1.0, 1.0, 1.0),
            smallest=Spread(*np.percentile([150, 250, 350], [50, 10, 90])),
            width=Spread(*widths),
        )},
    )  # fmt: skip
    table = pd.read_csv(tmp_path / "csv_file" / "fingerprint.csv")
    assert list(table.image) == ["png/0.png", "png/1.png", "png/2.png", "png/3.png", "png/v.png"]
    assert table.plate_width.isna().tolist() == [True, False, False, False, True]


def test_the_summary_line_gives_the_sizes_and_each_class():
    def same(value: float) -> Spread:
        return Spread(value, value, value)

    foreground = ClassFingerprint(0.95, same(0.1), same(5), same(12), Spread(3.0, 2.0, 4.0))
    fingerprint = Fingerprint(40, Spread(480.0, 400.0, 500.0), same(512.0), {"foreground": foreground})
    assert describe(fingerprint) == [
        "fingerprint: 40 training pairs, images 512 x 480 px (median); foreground: in 95% of them, structures 3.0 px "
        "wide (median; 10% below 2.0), the smallest object 12 px (median), 5 objects a pair (median)"
    ]
    two = describe(Fingerprint(40, same(480.0), same(512.0), {"plate": foreground, "lunula": foreground}))
    assert two[0] == "fingerprint: 40 training pairs, images 512 x 480 px (median)"
    assert [line.split(":")[0] for line in two[1:]] == ["  plate", "  lunula"]
    assert describe(Fingerprint(3, same(64.0), same(64.0), {}))[0].endswith("; no class appears in any of them")


def test_data_prepared_before_fingerprints_have_none(tmp_path):
    (tmp_path / "csv_file").mkdir()
    assert read_fingerprint(tmp_path) is None


SPREAD = {"median": 5.0, "p10": 3.0, "p90": 7.0}
GOOD = {"version": 1, "pairs": 4, "image_height": SPREAD, "image_width": SPREAD,
        "classes": {"foreground": {"present_in": 0.75, "share": {"median": 0.1, "p10": 0.0, "p90": 0.2},
                                   "components": SPREAD, "smallest": SPREAD, "width": SPREAD}}}  # fmt: skip


def changed(key: str, value: object) -> dict:
    """GOOD with the dotted key set to value (or removed, for the value DELETE)."""
    data = json.loads(json.dumps(GOOD))
    *parents, last = key.split(".")
    inner = data
    for name in parents:
        inner = inner[name]
    if value is DELETE:
        del inner[last]
    else:
        inner[last] = value
    return data


DELETE = object()
MALFORMED = {  # what the file holds: the key its message names
    "not JSON": ("{'version': 1", "the file"),
    "not an object": ([GOOD], "the file"),
    "missing key": (changed("image_width", DELETE), "image_width"),
    "missing inner key": (changed("classes.foreground.width.p90", DELETE), "classes.foreground.width.p90"),
    "unknown key": (changed("pairs_valid", 3), "pairs_valid"),
    "unknown inner key": (changed("classes.foreground.share.mean", 0.1), "classes.foreground.share.mean"),
    "string for a number": (changed("image_height.median", "512"), "image_height.median"),
    "string for a count": (changed("pairs", "4"), "pairs"),
    "bool for a number": (changed("classes.foreground.components.p10", True), "classes.foreground.components.p10"),
    "fraction for a count": (changed("pairs", 4.5), "pairs"),
    "number for a spread": (changed("classes.foreground.width", 3.0), "classes.foreground.width"),
    "list for the classes": (changed("classes", ["foreground"]), "classes"),
    "negative": (changed("classes.foreground.smallest.p10", -1), "classes.foreground.smallest.p10"),
    "NaN": (changed("image_width.p90", float("nan")), "image_width.p90"),
    "infinite": (changed("classes.foreground.width.median", float("inf")), "classes.foreground.width.median"),
    "share above 1": (changed("classes.foreground.present_in", 1.5), "classes.foreground.present_in"),
    "unknown version": (changed("version", 2), "version"),
    "version as a string": (changed("version", "1"), "version"),
}


@pytest.mark.parametrize("content, key", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_fingerprint_is_refused_in_one_line_naming_the_file_and_the_key(tmp_path, content, key):
    path = fingerprint_path(tmp_path)
    path.parent.mkdir()
    path.write_text(json.dumps(GOOD))
    assert read_fingerprint(tmp_path).classes["foreground"].present_in == 0.75  # GOOD itself is read
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(UserError) as error:
        read_fingerprint(tmp_path)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and str(path) in message and key in message
    assert key == "the file" or f"{key} " in message  # the whole key, not a part of it
