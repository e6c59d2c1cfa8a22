"""The Keras metrics of several classes: each class's IoU from the epoch's confusion matrix, on one device and on two
logical devices, and ignored pixels counted by neither loss nor metrics."""

import json
import os
import subprocess
import sys

from segtf.dataset.classes import IGNORED
from segtf.modeling.losses import make_loss
from segtf.modeling.metrics import ForegroundScore, class_metrics

import numpy as np
import pytest
import tensorflow as tf
from helpers import PYTHONPATH, assert_class_scores, class_scores_under, random_labels_and_probabilities


def test_foreground_iou_pools_the_epochs_pixels_where_a_mean_over_batches_differs():
    small, large = np.zeros((1, 8, 8, 1), np.float32), np.zeros((1, 8, 8, 1), np.float32)
    small[0, 0, 0], large[0, :4] = 1, 1  # found whole (IoU 1) and its 32 pixels half-found (IoU 0.5)
    score = ForegroundScore("iou")
    score.update_state(small, small)
    score.update_state(large, large * (np.arange(8)[None, None, :, None] < 4))
    assert float(score.result()) == pytest.approx((1 + 16) / (1 + 32)) and abs(float(score.result()) - 0.75) > 0.2


def test_class_scores_are_the_epochs_confusion_matrix_iou():
    assert_class_scores(class_scores_under(tf.distribute.get_strategy()))


CLASS_SCORES_ON_DEVICES = """
import json
from segtf.training import distribute
from helpers import class_scores_under
strategy = distribute.make_strategy(["cpu"], 2)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, **class_scores_under(strategy)}))
"""


def test_class_scores_on_two_logical_devices_are_the_confusion_matrix_iou():
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", CLASS_SCORES_ON_DEVICES], capture_output=True, text=True,
                            timeout=300, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found.pop("replicas") == 2
    assert_class_scores(found)


@pytest.mark.parametrize("loss_name", ["dice_focal", "dice_bce", "bce", "focal"])
def test_ignored_pixels_change_neither_loss_nor_metrics(loss_name):
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
