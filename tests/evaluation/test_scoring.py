"""One scoring: pixel counts to IoU, F1, precision and recall, with both-empty scored 1 by every caller: the Keras
metrics of training, train.py's sliding-window validation and predict.py."""

import shutil
from pathlib import Path

from segtf.cli import predict, prepare
from segtf.dataset import pipeline
from segtf.dataset.patches import Patches
from segtf.evaluation.scoring import ratios, scores
from segtf.modeling import network
from segtf.modeling.metrics import ForegroundScore
from segtf.training import callbacks

import cv2
import numpy as np
import pandas as pd
import pytest


def test_scores_match_hand_computed_values():
    true = np.array([[1, 1, 0, 0]], bool)
    predicted = np.array([[1, 0, 1, 0]], bool)
    assert scores(predicted, true) == {
        "iou": 1 / 3, "f1": 0.5, "precision": 0.5, "recall": 0.5, "tp": 1, "fp": 1, "fn": 1,
    }  # fmt: skip
    empty = np.zeros((2, 2), bool)
    assert scores(empty, empty) == {"iou": 1, "f1": 1, "precision": 1, "recall": 1, "tp": 0, "fp": 0, "fn": 0}
    one = np.array([[True, False], [False, False]])
    for predicted_mask, true_mask in ((empty, one), (one, empty)):
        found = scores(predicted_mask, true_mask)
        assert (found["iou"], found["f1"], found["precision"], found["recall"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_the_keras_metrics_follow_the_same_rule_as_numpy(batch_size):
    rng = np.random.default_rng(0)
    true = rng.random((6, 8, 8, 1)) < 0.3
    predicted = rng.random((6, 8, 8, 1))
    true[:2], predicted[:2] = False, 0.1  # two images where both are empty
    expected = scores(predicted > 0.5, true)
    for name in ("iou", "f1"):
        metric = ForegroundScore(name)
        for first in range(0, 6, batch_size):
            metric.update_state(true[first : first + batch_size], predicted[first : first + batch_size])
        assert float(metric.result()) == pytest.approx(expected[name], abs=1e-6)
        empty = ForegroundScore(name)
        empty.update_state(true[:2], predicted[:2])
        assert float(empty.result()) == 1.0 == ratios(0, 0, 0)[name]


@pytest.fixture
def nothing_to_find(synthetic_data, trained, tmp_path) -> tuple[Path, Path]:
    """(DATA, weights): a set whose valid images have empty masks, and the shared run's weights with the last layer
    set to predict nothing anywhere, with the run's config beside them."""
    data = tmp_path / "data"
    photos = sorted((synthetic_data / "valid" / "images").rglob("*.png"))[:3]
    for split, chosen in (("train", photos[:1]), ("valid", photos)):
        for photo in chosen:
            (data / split / "images").mkdir(parents=True, exist_ok=True)
            (data / split / "masks").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, data / split / "images" / photo.name)
            height, width = cv2.imread(str(photo)).shape[:2]
            cv2.imwrite(str(data / split / "masks" / photo.name), np.zeros((height, width), np.uint8))
    prepare.main(["--data_root", str(data), "--workers", "2"])
    net = network.build_model("resnet18", "none")
    net.load_weights(str(trained / "weights" / "best-weight_resnet18.h5"))
    final = net.get_layer("final_conv")
    kernel, bias = final.get_weights()
    final.set_weights([np.zeros_like(kernel), np.full_like(bias, -50)])
    (tmp_path / "run" / "weights").mkdir(parents=True)
    shutil.copyfile(trained / "run_config.json", tmp_path / "run" / "run_config.json")
    weights = tmp_path / "run" / "weights" / "nothing.h5"
    net.save_weights(str(weights))
    return data, weights


def predicted_micro_iou(weights: Path, data: Path, out: Path, *flags: str) -> float:
    predict.main(["--weights", str(weights), "--data_root", str(data), "--output", str(out), *flags])
    table = pd.read_csv(out / "metrics.csv")
    assert len(table) == 3 and (table.iou == 1).all()  # each image: nothing to find, nothing found
    return ratios(int(table.tp.sum()), int(table.fp.sum()), int(table.fn.sum()))["iou"]


def test_training_validation_and_predict_py_score_an_empty_truth_and_prediction_alike(nothing_to_find, tmp_path):
    data, weights = nothing_to_find
    net = network.create_model("resnet18", "none")
    net.load_weights(str(weights))
    valid, _ = pipeline.build_dataset([data / "csv_file" / "valid.csv"], 64, 2, training=False)
    whole = net.evaluate(valid, verbose=0, return_dict=True)  # what fit logs as val_iou and val_f1
    logs = {}
    table = pipeline.read_samples(data / "csv_file" / "valid.csv")
    callbacks.sliding_window_validation(net, table, Patches(64), 2, None).on_epoch_end(0, logs)  # patch runs
    by_windows = predicted_micro_iou(weights, data, tmp_path / "windows", "--patch_size", "64")
    assert whole["iou"] == whole["f1"] == logs["val_iou"] == logs["val_f1"] == 1.0
    assert predicted_micro_iou(weights, data, tmp_path / "whole") == by_windows == 1.0
