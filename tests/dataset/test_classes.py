"""Several classes in data_preparation.py: label masks by value or by colour, the ignored value, the summary and the
class list that train.py and predict.py read, and the generated 3-class demo set."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import data_preparation as dp
from classes import IGNORED, read_classes


def prepare(data_root: Path, *flags: str) -> None:
    dp.main(["--data_root", str(data_root), "--workers", "1", *flags])


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
    assert record == {"classes": ["background", "class_1", "class_2"], "ignored": IGNORED}


def numpy_class_iou(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Each class's IoU from numpy's confusion matrix of the pixels not ignored (1 for a class never seen)."""
    counted = labels != IGNORED
    matrix = np.zeros((classes, classes))
    np.add.at(matrix, (labels[counted], predicted[counted]), 1)
    tp = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), 1.0)


def random_labels_and_probabilities(classes: int, count: int = 12, side: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, (count, side, side, 1)).astype(np.float32)
    labels[rng.random(labels.shape) < 0.1] = IGNORED
    logits = rng.normal(size=(count, side, side, classes)) + 2 * np.eye(classes)[labels[..., 0].astype(int) % classes]
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return labels, probabilities.astype(np.float32)


def class_scores_under(strategy, batch_sizes: tuple = (2, 6)) -> dict:
    """{batch size: the class metrics' results}, and numpy's IoU of each class, for a model that returns its input
    (probabilities of 3 classes) evaluated under strategy: the devices and workers each score a part of every batch.
    Other processes (2 logical devices, a cluster) import this, and the test below runs it in this one."""
    import tensorflow as tf

    from losses import make_loss
    from scoring import class_metrics

    labels, probabilities = random_labels_and_probabilities(3)
    with strategy.scope():
        inputs = tf.keras.Input((None, None, 3))
        identity = tf.keras.Model(inputs, tf.keras.layers.Activation("linear")(inputs))
        identity.compile(loss=make_loss("dice_focal", classes=3), metrics=class_metrics(["background", "a", "b"]))
    found = {}
    for batch_size in batch_sizes:
        pairs = tf.data.Dataset.from_tensor_slices((probabilities, labels)).batch(batch_size)
        found[batch_size] = identity.evaluate(pairs, verbose=0, return_dict=True)
    found["numpy"] = numpy_class_iou(labels[..., 0].astype(int), probabilities.argmax(-1), 3).tolist()
    return found


def assert_class_scores(found: dict) -> None:
    """Each batch size's per-class IoU is numpy's, and iou the foreground classes' mean."""
    expected = found.pop("numpy")
    for scores in found.values():
        assert [scores[f"iou_{n}"] for n in ("background", "a", "b")] == pytest.approx(expected, abs=1e-5)
        assert scores["iou"] == pytest.approx(np.mean(expected[1:]), abs=1e-5)


def test_class_scores_are_the_epochs_confusion_matrix_iou():
    import tensorflow as tf

    assert_class_scores(class_scores_under(tf.distribute.get_strategy()))


CLASS_SCORES_ON_DEVICES = """
import json, sys
sys.path[:0] = [{repo!r}, {tests!r}]
import distribute
from test_classes import class_scores_under
strategy = distribute.make_strategy(["cpu"], 2)
print(json.dumps({{"replicas": strategy.num_replicas_in_sync, **class_scores_under(strategy)}}))
"""


def test_class_scores_on_two_logical_devices_are_the_confusion_matrix_iou():
    from conftest import REPO

    code = CLASS_SCORES_ON_DEVICES.format(repo=str(REPO), tests=str(REPO / "tests"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found.pop("replicas") == 2
    assert_class_scores(found)


@pytest.mark.parametrize("loss_name", ["dice_focal", "dice_bce", "bce", "focal"])
def test_ignored_pixels_change_neither_loss_nor_metrics(loss_name):
    import tensorflow as tf

    from losses import make_loss
    from scoring import class_metrics

    labels, probabilities = random_labels_and_probabilities(3, count=2)
    counted = labels[..., 0] != IGNORED
    changed = probabilities.copy()
    changed[~counted] = probabilities[~counted][:, ::-1]  # other probabilities where nothing counts
    only_counted = (labels[counted][None, None], probabilities[counted][None, None])  # one row of the counted pixels
    loss = make_loss(loss_name, classes=3)
    value = float(loss(tf.constant(labels), tf.constant(probabilities)))
    assert float(loss(tf.constant(labels), tf.constant(changed))) == pytest.approx(value, rel=1e-6)
    assert float(loss(*map(tf.constant, only_counted))) == pytest.approx(value, rel=1e-6)
    scores = []
    for truth, predicted in ((labels, probabilities), (labels, changed), only_counted):
        metric = class_metrics(["background", "a", "b"])[0]
        metric.update_state(truth, predicted)
        scores.append(float(metric.result()))
    assert scores[1] == scores[0] and scores[2] == scores[0]
    perfect = np.eye(3, dtype=np.float32)[np.where(counted, labels[..., 0], 0).astype(int)]
    assert float(loss(tf.constant(labels), tf.constant(perfect))) == pytest.approx(0, abs=1e-5)


@pytest.mark.parametrize("loader", [{}, {"cache_format": "tfrecord"}, {"resize_first": False}])
def test_resized_and_augmented_label_masks_hold_only_class_values(loader, tmp_path):
    """Class 2 and ignored pixels beside the background, never class 1: any interpolation but the nearest would
    put a 1 (or values between 2 and 255) on their edges."""
    import dataloader

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
        batches, _ = dataloader.build_dataset([csv], 48, 4, training=training, augment="any_orientation", classes=3,
                                              seed=1, **loader)  # fmt: skip
        values = np.unique(np.concatenate([masks.numpy().ravel() for _, masks in batches.take(4)]))
        assert set(values) == {0, 2, IGNORED}, (training, values)


def test_patch_training_of_several_classes_validates_as_predict_py_scores(tmp_path):
    import tensorflow as tf
    from conftest import run_training

    import predict
    from inference import ensemble_probabilities, load_member

    data = tmp_path / "data"
    prepare(data, "--synthetic", "16", "--classes", "3")
    run_training(data, tmp_path / "work", "--patch_size", "64", "--scale", "0.5", "--epochs", "1")
    history = pd.read_csv(tmp_path / "work" / "tensorflow" / "logs" / "history.csv")
    weights = tmp_path / "work" / "tensorflow" / "weights" / "last-weight_resnet18.h5"
    out = tmp_path / "out"
    predict.main(["--weights", str(weights), "--data_root", str(data), "--split", "valid", "--export", "savedmodel",
                  "--output", str(out)])  # fmt: skip
    table = pd.read_csv(out / "metrics.csv")  # by windows at scale 0.5, from run_config.json
    sums = table.groupby("class", sort=False)[["tp", "fp", "fn"]].sum()
    micro = sums.tp / (sums.tp + sums.fp + sums.fn)
    assert history.val_iou_class_2.iloc[-1] == pytest.approx(micro["class_2"], abs=1e-6)
    assert history.val_iou.iloc[-1] == pytest.approx(micro[["class_1", "class_2"]].mean(), abs=1e-6)
    image = data / pd.read_csv(data / "csv_file" / "valid.csv").image[0]
    _, photo, expected = next(
        ensemble_probabilities([load_member(weights, {"batch_size": 8, "overlap": 0.5})], [image], 8, None, {})
    )
    serve = tf.saved_model.load(str(out / "savedmodel")).signatures["serving_default"]
    assert np.abs(serve(images=tf.constant(photo[None]))["probabilities"].numpy()[0] - expected).max() < 1e-4


def test_balance_classes_draws_a_rare_class_often(tmp_path):
    import dataloader

    for index in range(10):  # class 2 in one image of ten
        write_pair(tmp_path, f"image_{index}", stripes([0, 1, 2 if index == 0 else 1, 0], side=32))
    prepare(tmp_path, "--classes", "3", "--valid_fraction", "0")
    csvs = dataloader.train_csvs(tmp_path, "classes")
    assert [p.name for p in csvs] == ["train.csv", "classes_train_1.csv", "classes_train_2.csv"]
    shares = {}
    for balance in (False, True):
        batches, _ = dataloader.build_dataset(csvs if balance else csvs[:1], 32, 10, training=True, balance=balance,
                                              classes=3, seed=0, augment="none")  # fmt: skip
        masks = np.concatenate([masks.numpy() for _, masks in batches.take(30)])
        shares[balance] = np.mean([(mask == 2).any() for mask in masks])
    assert shares[False] == pytest.approx(0.1, abs=0.05) and shares[True] == pytest.approx(0.4, abs=0.08)


def test_cross_validation_of_several_classes_scores_each_pair_and_class_once(tmp_path, capsys):
    from conftest import run_training

    import predict

    data = tmp_path / "data"
    prepare(data, "--synthetic", "16", "--classes", "3")
    run_training(data, tmp_path / "work", "--folds", "2", "--epochs", "1", "--steps_per_epoch", "2")
    predict.main(["--cv", str(tmp_path / "work"), "--output", str(tmp_path / "cv")])
    table = pd.read_csv(tmp_path / "cv" / "metrics.csv")
    train = pd.read_csv(data / "csv_file" / "train.csv")
    assert len(table) == 3 * len(train) and sorted(table.fold.unique()) == [0, 1]
    assert (table.groupby("image").size() == 3).all()
    assert "class_2: min_size" in capsys.readouterr().out
    chosen = json.loads((tmp_path / "work" / "postprocessing.json").read_text())["settings"]
    assert set(chosen) == {"classes"} and set(chosen["classes"]) == {"class_1", "class_2"}
    predict.main(["--weights", str(tmp_path / "work"), "--data_root", str(data), "--output", str(tmp_path / "out")])
    out = capsys.readouterr().out  # the ensemble of the two folds, post-processed as chosen
    assert "foreground classes: micro IoU" in out and "post-processing of" in out
