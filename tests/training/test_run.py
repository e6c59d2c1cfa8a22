"""model.py and train.py on generated data: small images, a small backbone, CPU devices."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import REPO, SMALL
from conftest import run_training as run

import callbacks
import checkpoints
import dataloader
import model
import optimizers
import train
import workdir
from input_scaling import batch_dtype
from train import train_args


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
    reloaded = model.create_model("resnet18", "none")
    reloaded.load_weights(str(trained / "weights" / "best-weight_resnet18.h5"))
    valid, n = dataloader.build_dataset([synthetic_data / "csv_file" / "valid.csv"], 64, 8, training=False)
    predicted = reloaded.predict(valid, verbose=0)
    assert predicted.shape == (n, 64, 64, 1) and 0 <= predicted.min() and predicted.max() <= 1
    history = pd.read_csv(trained / "logs" / "history.csv")
    best = history.loc[history.val_iou.idxmax()]  # the default --monitor val_iou chose them
    scored = reloaded.evaluate(valid, verbose=0, return_dict=True)
    assert scored["loss"] == pytest.approx(best.val_loss, rel=1e-3) and scored["iou"] == pytest.approx(best.val_iou)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_gives_float32_output_and_finite_float32_loss(synthetic_data, precision):
    """float16 scales the loss against underflow; bfloat16 has float32's range and does not."""
    net = model.create_model("resnet18", "none", precision=precision)
    assert net.output.dtype == tf.float32 and net.layers[2].compute_dtype == precision
    assert all(weight.dtype == tf.float32 for weight in net.weights)
    scaled = isinstance(net.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert scaled == (precision == "float16")
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # set for the build only, then restored
    csv = synthetic_data / "csv_file" / "train.csv"
    batches, _ = dataloader.build_dataset([csv], 32, 2, training=True, dtype=batch_dtype(precision))
    images, masks = next(iter(batches))
    assert images.dtype == masks.dtype == batch_dtype(precision)
    loss = net.compute_loss(images, masks, net(images, training=True))
    assert loss.dtype == tf.float32
    history = net.fit(batches, steps_per_epoch=1, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][0])


def test_bn_momentum_reaches_every_batchnorm_layer():
    net = model.create_model("resnet18", "none", bn_momentum=0.5)
    momenta = [layer.momentum for layer in net.submodules if isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert len(momenta) > 10 and set(momenta) == {0.5}


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "radam", "sgd"])
def test_weight_decay_reaches_each_optimizer(optimizer):
    assert train_args(["--data_root", "d", "--weight_decay", "0.5"]).weight_decay == 0.5
    net = model.create_model("resnet18", "none", optimizer=optimizer, weight_decay=0.5)
    assert net.optimizer.get_config()["weight_decay"] == 0.5


def test_each_optimizer_has_its_own_defaults_unless_given():
    assert (train_args(["--data_root", "d"]).optimizer, train_args(["--data_root", "d"]).weight_decay) == (
        "adamw",
        0.05,
    )
    sgd = train_args(["--data_root", "d", "--optimizer", "sgd"])
    assert (sgd.learning_rate, sgd.weight_decay) == (0.01, 3e-5)
    assert train_args(["--data_root", "d", "--optimizer", "sgd", "--learning_rate", "0.1"]).learning_rate == 0.1


def test_cosine_schedule_warms_up_then_decays_to_zero():
    schedule = optimizers.learning_rate_schedule("cosine", 0.01, total_steps=1000)
    rates = [float(schedule(step)) for step in (0, 25, 50, 525, 1000)]
    assert rates[0] == 0 and rates[1] == pytest.approx(0.005) and rates[2] == pytest.approx(0.01)
    assert rates[3] == pytest.approx(0.005, rel=1e-3) and rates[4] == pytest.approx(0, abs=1e-9)
    assert optimizers.learning_rate_schedule("plateau", 0.01, total_steps=1000) == 0.01


def test_monitor_plateau_and_patience_reach_their_callbacks(synthetic_data, tmp_path):
    args = train_args(["--data_root", str(synthetic_data), "--monitor", "val_loss", "--lr_schedule", "plateau",
                       "--patience", "3"])  # fmt: skip
    paths = workdir.work_paths(tmp_path, "resnet18")
    valid, _ = dataloader.build_dataset([synthetic_data / "csv_file" / "valid.csv"], 64, 8, training=False)
    made = callbacks.make_callbacks(args, paths, model.create_model("resnet18", "none"), valid, [], 5, True)
    by_type = {type(c).__name__: c for c in made}
    assert by_type["CommittedEpochs"].monitor == "val_loss" and by_type["CommittedEpochs"].mode == "min"
    assert by_type["ReduceLROnPlateau"].monitor == "val_loss" and by_type["ReduceLROnPlateau"].mode == "min"
    assert by_type["EarlyStopping"].patience == 3 and by_type["EarlyStopping"].monitor == "val_loss"
    defaults = callbacks.make_callbacks(train_args(["--data_root", str(synthetic_data)]), paths,
                                    model.create_model("resnet18", "none"), valid, [], 5, True)  # fmt: skip
    assert not {"ReduceLROnPlateau", "EarlyStopping"} & {type(c).__name__ for c in defaults}


def test_best_epoch_is_the_highest_iou_or_the_lowest_loss():
    history = pd.DataFrame({"epoch": [0, 1, 2], "val_iou": [0.2, 0.5, 0.4], "val_loss": [0.9, 0.7, 0.6]})
    assert checkpoints.best_epoch(history, "val_iou").epoch == 1
    assert checkpoints.best_epoch(history, "val_loss").epoch == 2


def test_a_run_repeats_exactly_with_the_seed_it_drew_and_recorded(trained, synthetic_data, tmp_path, monkeypatch):
    """The repeat logs to Weights & Biases, offline: it leaves an offline run, and logging changes nothing."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seed = json.loads((trained / "run_config.json").read_text())["args"]["seed"]
    run(synthetic_data, tmp_path, "--epochs", "2", "--seed", str(seed), "--log", "wandb")
    first, second = ((root / "logs" / "history.csv").read_text() for root in (trained, tmp_path / "tensorflow"))
    assert first == second and len(first.splitlines()) == 3
    assert list((tmp_path / "tensorflow" / "logs" / "wandb").glob("offline-run-*"))


def test_negative_weight_decay_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        train_args(["--data_root", "d", "--weight_decay", "-1"])
    assert stop.value.code == 2 and "--weight_decay: must be a finite number of at least 0" in capsys.readouterr().err


@pytest.mark.parametrize("text, value", [("False", False), ("0", False), ("no", False), ("True", True), ("1", True)])
def test_booleans_parse_as_written(text, value):
    assert train_args(["--data_root", "d", "--augment", "none", "--resize_first", text]).resize_first is value


@pytest.mark.parametrize(
    "text, precision",
    [("True", "float16"), ("1", "float16"), ("False", "float32"), ("no", "float32"), ("BFloat16", "bfloat16")],
)
def test_mixed_precision_takes_a_type_or_a_boolean(text, precision):
    assert train_args(["--data_root", "d", "--mixed_precision", text]).mixed_precision == precision
    assert train_args(["--data_root", "d"]).mixed_precision == "auto"


def test_bare_boolean_flags_mean_true():
    assert train_args(["--data_root", "d", "--resume"]).resume is True
    assert train_args(["--data_root", "d", "--resume", "True"]).resume is True
    assert train_args(["--data_root", "d"]).resume is False


def test_image_size_must_be_a_multiple_of_32(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_args(["--data_root", "d", "--image_size", "100"])
    assert exit_info.value.code == 2 and "multiple of 32" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--batch_size", "--epochs", "--cpu_devices"])
def test_counts_below_1_exit_2(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_args(["--data_root", "d", "--device", "cpu", flag, "0"])
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be a whole number of at least 1" in capsys.readouterr().err


def test_missing_gpu_exits_2_naming_the_gpus(synthetic_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data_root", str(synthetic_data), "--work_dir", str(tmp_path), "--device", "99"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: --device 99: no such GPU; this machine has ")


def test_imagenet_weights_offline_exit_2_with_the_ways_out(synthetic_data, tmp_path, capsys, monkeypatch):
    attempts = []

    def offline(*args, **kwargs):  # what Keras raises when the download fails
        attempts.append(kwargs.get("origin", args[1] if len(args) > 1 else None))
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tf.keras.utils, "get_file", offline)
    flags = [f for f in SMALL if f != "none"]
    flags[flags.index("--encoder_weights") + 1 : flags.index("--encoder_weights") + 1] = ["imagenet"]
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data_root", str(synthetic_data), "--work_dir", str(tmp_path), *flags, "--epochs", "1"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert attempts and exit_info.value.code == 2
    assert "could not download the ImageNet weights" in error and "--encoder_weights none" in error


def test_an_earlier_run_is_never_overwritten_silently(trained, synthetic_data, capsys):
    before = (trained / "weights" / "best-weight_resnet18.h5").read_bytes()
    for flags in ([], ["--resume"]):
        with pytest.raises(SystemExit) as exit_info:
            run(synthetic_data, trained.parent, "--epochs", "2", *flags)
        assert exit_info.value.code == 2
    errors = capsys.readouterr().err
    assert "holds an earlier run" in errors and "nothing to resume" in errors
    assert (trained / "weights" / "best-weight_resnet18.h5").read_bytes() == before


def test_wandb_online_without_login_exits_2_before_training(synthetic_data, tmp_path, monkeypatch, capsys):
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    with pytest.raises(SystemExit) as exit_info:
        run(synthetic_data, tmp_path / "work", "--epochs", "1", "--log", "wandb")
    assert exit_info.value.code == 2 and "not logged in" in capsys.readouterr().err
    assert not (tmp_path / "work" / "tensorflow" / "run_config.json").exists()


DATASET_IOU = """
import json, sys
sys.path.insert(0, {repo!r})
import numpy as np
import dataloader, distribute, model, train
if {devices} > 1:  # first train.py itself on these devices, one epoch
    train.main({train_argv!r})
strategy = distribute.make_strategy(["cpu"], {devices})
with strategy.scope():
    net = model.create_model("resnet18", "none")
net.load_weights({weights!r})
found = {{}}
for batch_size in (2, 6):
    valid, _ = dataloader.build_dataset([{csv!r}], 64, batch_size, training=False, replicas={devices})
    found[batch_size] = net.evaluate(valid, verbose=0, return_dict=True)["iou"]
true = np.concatenate([masks.numpy() for _, masks in valid]) > 0.5
predicted = net.predict(valid, verbose=0) > 0.5
found["numpy"] = float((true & predicted).sum() / (true | predicted).sum())
# what a mean of per-batch IoUs (the old metric, smoothed as segmentation_models does) gives at batch 2
batches = [(true[i : i + 2], predicted[i : i + 2]) for i in range(0, len(true), 2)]
pairs = [(t & p).sum() / ((t | p).sum() + 1e-5) if (t | p).any() else 1.0 for t, p in batches]
found["per_batch_mean"] = float(np.mean(pairs))
if {devices} > 1:  # the global batch of 8 is split over the devices
    train, _ = dataloader.build_dataset([{train_csv!r}], 64, 8, training=True)
    images, _ = next(iter(strategy.experimental_distribute_dataset(train)))
    found["replica_shapes"] = [list(t.shape) for t in images.values]
print(json.dumps(found))
"""


@pytest.mark.parametrize("devices", [1, 2])
def test_val_iou_is_the_datasets_whatever_the_batch_size_and_devices(trained, synthetic_data, tmp_path, devices):
    """On 2 CPU devices, train.py trains first (MirroredStrategy over them), and the global batch is split."""
    weights, csv = trained / "weights" / "last-weight_resnet18.h5", synthetic_data / "csv_file" / "valid.csv"
    train_argv = ["--data_root", str(synthetic_data), "--work_dir", str(tmp_path), *SMALL, "--cpu_devices", "2",
                  "--epochs", "1"]  # fmt: skip
    train_csv = synthetic_data / "csv_file" / "train.csv"
    code = DATASET_IOU.format(repo=str(REPO), devices=devices, weights=str(weights), csv=str(csv),
                              train_csv=str(train_csv), train_argv=train_argv)  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    if devices == 2:
        assert "8 = 2 device(s) x 4" in result.stdout
        assert json.loads((tmp_path / "tensorflow" / "run_config.json").read_text())["replicas"] == 2
        assert np.isfinite(pd.read_csv(tmp_path / "tensorflow" / "logs" / "history.csv").val_loss).all()
    assert abs(found["per_batch_mean"] - found["numpy"]) > 1e-4  # 10 times the tolerance: a per-batch mean fails
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
    import predict

    weights = tmp_path / "tensorflow" / "weights" / "last-weight_resnet18.h5"
    predict.main(["--weights", str(weights), "--data_root", str(synthetic_data), "--split", "valid",
                  "--tta", "flip", "--output", str(tmp_path / "out")])  # fmt: skip
    table = pd.read_csv(tmp_path / "out" / "metrics.csv")  # by windows at scale 0.5, from run_config.json
    micro = table.tp.sum() / (table.tp.sum() + table.fp.sum() + table.fn.sum())
    assert history.val_iou.iloc[-1] == pytest.approx(micro, abs=1e-6)


@pytest.mark.parametrize("flags, says", [
    (["--patch_size", "64", "--monitor", "val_loss"], "--patch_size validates whole images by sliding windows"),
    (["--tta", "flip"], "--tta flip applies to the sliding-window validation of --patch_size"),
])  # fmt: skip
def test_patch_validation_flags_need_each_other(flags, says, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_args(["--data_root", "d", *flags])
    assert exit_info.value.code == 2 and says in capsys.readouterr().err


def test_a_workers_paths_are_the_chiefs_moved_but_the_backup(tmp_path):
    paths = workdir.work_paths(tmp_path / "work", "resnet18")
    moved = paths.moved_to(tmp_path / "temp")
    assert moved.root == tmp_path / "temp" and moved.backup == paths.backup
    assert moved.best == tmp_path / "temp" / "weights" / "best-weight_resnet18.h5"
    assert moved.tensorboard.relative_to(moved.root) == paths.tensorboard.relative_to(paths.root)
    with pytest.raises(AttributeError):  # a typo fails where it is written, not at the end of an epoch
        paths.bset  # noqa: B018
