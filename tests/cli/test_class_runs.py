"""train.py and predict.py on the generated 3-class set: a patch run's validation scores as predict.py's, and the
cross-validation report and ensemble of several classes."""

import json

from segtf.cli import predict
from segtf.inference.predictor import ensemble_probabilities, load_member

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import prepare, run_training


def test_patch_training_of_several_classes_validates_as_predict_py_scores(tmp_path):
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


def test_cross_validation_of_several_classes_scores_each_pair_and_class_once(tmp_path, capsys):
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
