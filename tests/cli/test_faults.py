"""Each fault of the README's "What happens when…" table that train.py or the loader meets: one line
naming the file or flag, exit code 2, and nothing of the user's lost."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

from segtf.cli import prepare
from segtf.cli.train import train_args
from segtf.dataset import disk_cache, pipeline
from segtf.errors import UserError
from segtf.modeling.network import create_model
from segtf.training import workdir

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import REPO, SMALL, assert_whole_run, sha256_of_tree
from helpers import run_training as run


def one_error_line(capsys) -> str:
    """The only line on stderr (the loader's progress bars aside), which must be an error."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "/s]" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def fails(capsys, *args, **kwargs) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(*args, **kwargs)
    assert exit_info.value.code == 2
    return one_error_line(capsys)


@pytest.fixture
def small_data(tmp_path) -> Path:
    """A small generated dataset of its own, for tests that damage it."""
    prepare.main(["--data_root", str(tmp_path / "data"), "--synthetic", "16", "--workers", "2"])
    return tmp_path / "data"


@pytest.mark.parametrize("flags, says", [
    (["--learning_rate", "nan"], "--learning_rate: must be a finite number"),
    (["--bn_momentum", "-0.1"], "--bn_momentum: must be at least 0 and below 1"),
    (["--bn_momentum", "1"], "--bn_momentum: must be at least 0 and below 1"),
    (["--scale", "0"], "--scale: must be above 0 and below 8"),
    (["--foreground_share", "1.5"], "--foreground_share: must be from 0 to 1"),
    (["--patch_size", "64", "--cache_format", "tfrecord"], "--patch_size crops uncompressed copies"),
])  # fmt: skip
def test_rates_out_of_range_exit_2_naming_the_flag(flags, says, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_args(["--data_root", "d", *flags])
    assert exit_info.value.code == 2 and says in capsys.readouterr().err


def test_an_unprepared_folder_is_named_before_the_model_is_built(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        "segtf.training.run.create_model", lambda *a, **k: pytest.fail("built a model before checking the data")
    )
    error = fails(capsys, tmp_path / "never_prepared", tmp_path / "work", "--epochs", "1")
    assert "train.csv does not exist: run data_preparation.py" in error


def test_an_unknown_backbone_exits_2_naming_it(synthetic_data, tmp_path, capsys):
    error = fails(capsys, synthetic_data, tmp_path, "--epochs", "1", "--backbone", "resnet19")
    assert "--backbone resnet19 is not one of segmentation_models'" in error


def test_a_file_deleted_after_preparation_is_named_before_training(small_data, tmp_path, capsys):
    deleted = small_data / pd.read_csv(small_data / "csv_file" / "valid.csv")["mask"][0]
    deleted.unlink()
    error = fails(capsys, small_data, tmp_path / "work", "--epochs", "1")
    assert str(deleted) in error and "run data_preparation.py again" in error


def test_a_file_corrupted_after_preparation_is_named_before_training(small_data, tmp_path, capsys):
    corrupted = small_data / pd.read_csv(small_data / "csv_file" / "train.csv").image[0]
    corrupted.write_bytes(b"not a png")
    error = fails(capsys, small_data, tmp_path / "work", "--epochs", "1")
    assert str(corrupted) in error and "does not decode" in error


def test_an_unwritable_work_dir_exits_2_naming_it(synthetic_data, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    error = fails(capsys, synthetic_data, tmp_path / "a_file" / "work", "--epochs", "1")
    assert "--work_dir: cannot write into" in error and "a_file" in error


def test_a_full_disk_while_resizing_exits_2_naming_the_cache(small_data, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk_cache, "write_image", full)  # the forked workers inherit it
    csv_path = small_data / "csv_file" / "train.csv"
    with pytest.raises(UserError, match=r"cannot write the resized copies into .*96px: No space left"):
        disk_cache.resized_copies(pipeline.read_samples(csv_path), csv_path, 96)


def test_a_full_disk_while_checkpointing_keeps_the_finished_epochs(synthetic_data, tmp_path, capsys, monkeypatch):
    save_weights, calls = tf.keras.Model.save_weights, []

    def full_after_the_first_epoch(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) > 2:  # epoch 1 wrote its last and best weights
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_weights(self, path, *args, **kwargs)

    monkeypatch.setattr(tf.keras.Model, "save_weights", full_after_the_first_epoch)
    error = fails(capsys, synthetic_data, tmp_path, "--epochs", "2")
    assert "cannot write epoch 2's checkpoint" in error and "No space left on device" in error
    monkeypatch.setattr(tf.keras.Model, "save_weights", save_weights)
    run(synthetic_data, tmp_path, "--epochs", "2", "--resume")
    assert list(pd.read_csv(tmp_path / "tensorflow" / "logs" / "history.csv").epoch) == [0, 1]


def test_a_nan_loss_exits_2_in_one_line(synthetic_data, tmp_path, capsys, monkeypatch):
    def nan_loss(*args, **kwargs):
        net = create_model(*args, **kwargs)
        loss = net.loss
        net.compile(net.optimizer, loss=lambda true, predicted: loss(true, predicted) * np.nan, metrics=net.metrics)
        return net

    monkeypatch.setattr("segtf.training.run.create_model", nan_loss)
    error = fails(capsys, synthetic_data, tmp_path, "--epochs", "1")
    assert "the loss became nan in epoch 1, step 1: try a lower --learning_rate" in error


def test_out_of_memory_exits_2_in_one_line(synthetic_data, tmp_path, capsys, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape [8,384,384,32]")

    monkeypatch.setattr(tf.keras.Model, "fit", out_of_memory)
    error = fails(capsys, synthetic_data, tmp_path, "--epochs", "1")
    assert "out of memory while training" in error and "lower --batch_size or --image_size" in error


def test_a_batch_larger_than_the_training_set_trains_and_says_so(small_data, tmp_path, capsys):
    run(small_data, tmp_path, "--epochs", "1", "--steps_per_epoch", "1", "--batch_size", "32")
    assert "note: --batch_size 32 is more than the" in capsys.readouterr().out


def test_a_missing_package_is_recorded_as_none(monkeypatch):
    monkeypatch.setattr(workdir, "PACKAGES", ["tensorflow", "opencv-python-headless-not-installed"])
    versions = workdir.installed_versions()
    assert versions["tensorflow"] == tf.__version__ and versions["opencv-python-headless-not-installed"] is None
    json.dumps(versions)


def test_preparation_and_training_leave_every_original_as_it_was(nails, tmp_path):
    originals = sha256_of_tree(nails)
    prepare.main(["--data_root", str(nails), "--workers", "2"])
    run(nails, tmp_path / "work", "--epochs", "1", "--steps_per_epoch", "2")
    assert {p: h for p, h in sha256_of_tree(nails).items() if p in originals} == originals


def test_two_runs_started_together_on_one_work_dir_leave_one_whole_run(synthetic_data, tmp_path):
    """A double-submitted job: one run trains its epochs exactly once, the other exits 2 in one line naming the
    process and host that hold the folder."""
    command = [sys.executable, str(REPO / "train.py"), "--data_root", str(synthetic_data), "--work_dir", str(tmp_path),
               *SMALL, "--epochs", "2"]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]  # fmt: skip
    outputs = [process.communicate(timeout=300) for process in processes]
    codes = [process.returncode for process in processes]
    assert sorted(codes) == [0, 2], outputs
    errors = [line for line in outputs[codes.index(2)][1].splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "is in use by process" in errors[0], errors
    assert_whole_run(tmp_path, 2)


def test_the_scripts_start_without_tensorflows_logging_and_say_how_to_see_it():
    command = [sys.executable, str(REPO / "train.py"), "--help"]
    quiet = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    started = subprocess.run(command, capture_output=True, text=True, env=quiet, timeout=120)
    assert started.returncode == 0 and started.stderr == "" and started.stdout.startswith("usage: train.py")
    assert "TF_CPP_MIN_LOG_LEVEL=0 shows it" in " ".join(started.stdout.split())
