"""A training run on generated data (small images, a small backbone, CPU devices): what it writes, its callbacks,
its repeat by seed, the dataset's IoU whatever the batch and devices, patch runs' validation, the workers' paths."""

import json
import os
import subprocess
import sys

from segtf.cli import predict
from segtf.cli.train import train_args, train_config
from segtf.dataset import pipeline
from segtf.modeling import network
from segtf.run_paths import work_paths
from segtf.training import callbacks, checkpoints

import pandas as pd
import pytest
import tensorflow as tf
from helpers import PYTHONPATH
from helpers import run_training as run


def test_a_run_writes_weights_history_config_and_logs(trained):
    weights = trained / "weights"
    assert (weights / "best-weight_resnet18.h5").stat().st_size > 0
    assert (weights / "last-weight_resnet18.h5").stat().st_size > 0
    history = pd.read_csv(trained / "logs" / "history.csv")
    assert list(history.epoch) == [0, 1]
    assert {"loss", "val_loss", "iou", "val_iou", "f1", "val_f1"} <= set(history.columns)
    config = json.loads((trained / "run_config.json").read_text())
    assert config["args"]["backbone"] == "resnet18" and config["versions"]["tensorflow"] == tf.__version__
    assert config["steps_per_epoch"] == 5 and isinstance(config["args"]["seed"], int)  # drawn: none was given
    assert config["replicas"] == 1 and config["samples"]["valid"] > 0
    runs = list((trained / "logs" / "tensorboard").iterdir())
    assert len(runs) == 1
    for folder in ("train", "validation", "validation_pictures"):
        assert list((runs[0] / folder).glob("events.out.tfevents.*")), folder
    assert (trained / "logs" / "validation_pictures.png").stat().st_size > 0
    assert (trained / "logs" / "training_curves.png").stat().st_size > 0
    assert checkpoints.saved_position(trained / "backup") is None  # a finished run leaves no checkpoint to resume


def test_reloaded_best_weights_predict(trained, synthetic_data):
    reloaded = network.create_model("resnet18", "none")
    reloaded.load_weights(str(trained / "weights" / "best-weight_resnet18.h5"))
    valid, n = pipeline.build_dataset([synthetic_data / "csv_file" / "valid.csv"], 64, 8, training=False)
    predicted = reloaded.predict(valid, verbose=0)
    assert predicted.shape == (n, 64, 64, 1) and 0 <= predicted.min() and predicted.max() <= 1
    history = pd.read_csv(trained / "logs" / "history.csv")
    best = history.loc[history.val_iou.idxmax()]  # the default --monitor val_iou chose them
    scored = reloaded.evaluate(valid, verbose=0, return_dict=True)
    assert scored["loss"] == pytest.approx(best.val_loss, rel=1e-3) and scored["iou"] == pytest.approx(best.val_iou)


def test_monitor_plateau_and_patience_reach_their_callbacks(synthetic_data, tmp_path):
    config = train_config(train_args(["--data_root", str(synthetic_data), "--monitor", "val_loss", "--lr_schedule",
                                      "plateau", "--patience", "3"]))  # fmt: skip
    paths = work_paths(tmp_path, "resnet18")
    valid, _ = pipeline.build_dataset([synthetic_data / "csv_file" / "valid.csv"], 64, 8, training=False)
    made = callbacks.make_callbacks(config, paths, network.create_model("resnet18", "none"), valid, [], 5, True)
    by_type = {type(c).__name__: c for c in made}
    assert by_type["CommittedEpochs"].monitor == "val_loss" and by_type["CommittedEpochs"].mode == "min"
    assert by_type["ReduceLROnPlateau"].monitor == "val_loss" and by_type["ReduceLROnPlateau"].mode == "min"
    assert by_type["EarlyStopping"].patience == 3 and by_type["EarlyStopping"].monitor == "val_loss"
    defaults = callbacks.make_callbacks(train_config(train_args(["--data_root", str(synthetic_data)])), paths,
                                        network.create_model("resnet18", "none"), valid, [], 5, True)  # fmt: skip
    assert not {"ReduceLROnPlateau", "EarlyStopping"} & {type(c).__name__ for c in defaults}


def test_best_epoch_is_the_highest_iou_or_the_lowest_loss():
    history = pd.DataFrame({"epoch": [0, 1, 2], "val_iou": [0.2, 0.5, 0.4], "val_loss": [0.9, 0.7, 0.6]})
    assert checkpoints.best_epoch(history, "val_iou").epoch == 1
    assert checkpoints.best_epoch(history, "val_loss").epoch == 2


def test_a_run_repeats_exactly_with_the_seed_it_drew_and_recorded(
    trained, synthetic_data, tmp_path, monkeypatch, fresh_wandb
):
    """The repeat logs to Weights & Biases, offline: it leaves an offline run, and logging changes nothing."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seed = json.loads((trained / "run_config.json").read_text())["args"]["seed"]
    run(synthetic_data, tmp_path, "--epochs", "2", "--seed", str(seed), "--log", "wandb")
    first, second = ((root / "logs" / "history.csv").read_text() for root in (trained, tmp_path / "tensorflow"))
    assert first == second and len(first.splitlines()) == 3
    assert list((tmp_path / "tensorflow" / "logs" / "wandb").glob("offline-run-*"))


DATASET_IOU = """
import json
from segtf.dataset import pipeline
from segtf.modeling import network
from segtf.training import distribute
import numpy as np
strategy = distribute.make_strategy(["cpu"], {devices})
with strategy.scope():
    net = network.create_model("resnet18", "none")
net.load_weights({weights!r})
found = {{}}
for batch_size in (2, 6):
    valid, _ = pipeline.build_dataset([{csv!r}], 64, batch_size, training=False, replicas={devices})
    found[batch_size] = net.evaluate(valid, verbose=0, return_dict=True)["iou"]
true = np.concatenate([masks.numpy() for _, masks in valid]) > 0.5
predicted = net.predict(valid, verbose=0) > 0.5
found["numpy"] = float((true & predicted).sum() / (true | predicted).sum())
if {devices} > 1:  # the global batch of 8 is split over the devices
    train, _ = pipeline.build_dataset([{train_csv!r}], 64, 8, training=True)
    images, _ = next(iter(strategy.experimental_distribute_dataset(train)))
    found["replica_shapes"] = [list(t.shape) for t in images.values]
print(json.dumps(found))
"""


@pytest.mark.parametrize("devices", [1, 2])
def test_val_iou_is_the_datasets_whatever_the_batch_size_and_devices(trained, synthetic_data, tmp_path, devices):
    """On 2 CPU devices the global batch is split; train.py's own run on 2 devices is
    training/test_mixed_precision.py's. That a mean over batches would fail is modeling/test_metrics.py's."""
    weights, csv = trained / "weights" / "last-weight_resnet18.h5", synthetic_data / "csv_file" / "valid.csv"
    train_csv = synthetic_data / "csv_file" / "train.csv"
    code = DATASET_IOU.format(devices=devices, weights=str(weights), csv=str(csv), train_csv=str(train_csv))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": PYTHONPATH, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["2"] == pytest.approx(found["numpy"], abs=1e-5) and found["6"] == pytest.approx(
        found["numpy"], abs=1e-5
    )
    if devices == 2:
        assert found["replica_shapes"] == [[4, 64, 64, 3]] * 2


def test_patch_training_validates_whole_images_as_predict_py_scores_them(synthetic_data, tmp_path):
    run(synthetic_data, tmp_path, "--patch_size", "64", "--scale", "0.5", "--epochs", "1", "--tta", "flip")
    history = pd.read_csv(tmp_path / "tensorflow" / "logs" / "history.csv")
    assert (
        "val_loss" not in history
        and json.loads((tmp_path / "tensorflow" / "run_config.json").read_text())["args"]["patch_size"] == 64
    )
    weights = tmp_path / "tensorflow" / "weights" / "last-weight_resnet18.h5"
    predict.main(["--weights", str(weights), "--data_root", str(synthetic_data), "--split", "valid",
                  "--tta", "flip", "--output", str(tmp_path / "out")])  # fmt: skip
    table = pd.read_csv(tmp_path / "out" / "metrics.csv")  # by windows at scale 0.5, from run_config.json
    micro = table.tp.sum() / (table.tp.sum() + table.fp.sum() + table.fn.sum())
    assert history.val_iou.iloc[-1] == pytest.approx(micro, abs=1e-6)


def test_a_workers_paths_are_the_chiefs_moved_but_the_backup(tmp_path):
    paths = work_paths(tmp_path / "work", "resnet18")
    moved = paths.moved_to(tmp_path / "temp")
    assert moved.root == tmp_path / "temp" and moved.backup == paths.backup
    assert moved.best == tmp_path / "temp" / "weights" / "best-weight_resnet18.h5"
    assert moved.tensorboard.relative_to(moved.root) == paths.tensorboard.relative_to(paths.root)
    with pytest.raises(AttributeError):  # a typo fails where it is written, not at the end of an epoch
        paths.bset  # noqa: B018
