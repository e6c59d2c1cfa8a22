"""Kills early in a run, each resumed by the next run: nothing repeated or lost; recovery of hand-built states; the
adapter over Keras' private members on the installed version. Kills late in a run and signals: test_resume.py."""

import signal
from pathlib import Path

from segtf.errors import UserError
from segtf.run_paths import work_paths
from segtf.training import checkpoints, keras_backup, workdir

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import STEPS, assert_whole_run, run_to
from helpers import run_training as run

EPOCHS = 3
# (point, epoch, epochs committed after the kill): see tests/kill_at.py, in the order a run meets them, so that one run
# is killed at each in turn and resumed by the next; the points after these are test_resume.py's
KILL_POINTS = [
    ("step", 0, 0),
    ("validation", 0, 0),
    ("first_file", 0, 1),
    ("staged", 1, 1),
]  # before_backup (pending files complete, the backup not saved) is test_recovery_...'s second, hand-built case


def test_a_run_killed_at_every_early_point_in_turn_resumes_to_exactly_its_epochs(synthetic_data, tmp_path):
    paths = work_paths(tmp_path, "resnet18")
    for number, (point, epoch, committed) in enumerate(KILL_POINTS):
        flags = ["--epochs", str(EPOCHS), *(["--resume"] if number else [])]
        killed = run_to(point, epoch, synthetic_data, tmp_path, *flags)
        assert killed.returncode == -signal.SIGKILL, f"{point} {epoch}: {killed.stderr[-2000:]}"
        assert checkpoints.committed_epochs(paths.backup, STEPS) == committed, (point, epoch)
    run(synthetic_data, tmp_path, "--epochs", str(EPOCHS), "--resume")
    assert_whole_run(tmp_path, EPOCHS)


def hand_built_run(tmp_path: Path, backup_at: tuple[int, int], history_rows: int, pending: list[int]):
    """A work folder as a kill can leave it: a backup saved at (epoch, step), history_rows rows in history.csv, and
    pending folders of those epochs, each with its history (one row more) and last weights."""
    paths = work_paths(tmp_path, "resnet18")
    workdir.prepare_work_dir(paths, resume=False)
    counters = {f"ckpt_saved_{k}": tf.Variable(v, dtype=tf.int64) for k, v in zip(("epoch", "batch"), backup_at)}
    tf.train.CheckpointManager(tf.train.Checkpoint(**counters), str(paths.backup / "chief"), 1).save()
    pd.DataFrame({"epoch": range(history_rows)}).to_csv(paths.history, index=False)
    for number in pending:
        folder = paths.pending / str(number)
        folder.mkdir(parents=True)
        pd.DataFrame({"epoch": range(number + 1)}).to_csv(folder / paths.history.name, index=False)
        (folder / paths.last.name).write_bytes(f"weights of epoch {number}".encode())
    return paths


def test_recovery_finishes_a_committed_epoch_and_drops_an_uncommitted_one(tmp_path):
    paths = hand_built_run(tmp_path / "a", backup_at=(1, STEPS - 1), history_rows=1, pending=[1])  # epoch 2 committed
    assert checkpoints.recover(paths, STEPS) == 2
    assert list(pd.read_csv(paths.history).epoch) == [0, 1] and paths.last.read_bytes() == b"weights of epoch 1"
    assert not list(paths.pending.iterdir())
    paths = hand_built_run(tmp_path / "b", backup_at=(1, 2), history_rows=1, pending=[1])  # saved mid-epoch 2
    assert checkpoints.recover(paths, STEPS) == 1
    assert list(pd.read_csv(paths.history).epoch) == [0] and not paths.last.exists()
    assert not list(paths.pending.iterdir())


def test_recovery_refuses_a_history_that_disagrees_with_the_backup(tmp_path):
    paths = hand_built_run(tmp_path, backup_at=(0, STEPS - 1), history_rows=3, pending=[])
    with pytest.raises(UserError, match="has 3 epochs but the backup .* has 1"):
        checkpoints.recover(paths, STEPS)


def test_the_keras_backup_adapter_works_on_the_installed_keras(tmp_path):
    package, installed = keras_backup.keras_package()
    assert installed in keras_backup.TESTED_ON[package], f"{package} {installed}: check keras_backup.py, then list it"
    net = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    net.compile("sgd", "mse")
    backup, seen = keras_backup.StepBackup(tmp_path), []

    def at_step(batch: int, logs: dict) -> None:
        if backup.epoch == 1 and batch == 2:
            backup.save()
        seen.append((backup.epoch, batch, keras_backup.saved_position(tmp_path)))

    steps = tf.keras.callbacks.LambdaCallback(on_train_batch_end=at_step)
    data = tf.data.Dataset.from_tensors((np.ones((4, 2)), np.ones((4, 1)))).repeat()
    net.fit(data, epochs=2, steps_per_epoch=4, callbacks=[backup, steps], verbose=0)
    # no backup but the one asked for, and it records its epoch and step
    assert seen == [(0, b, None) for b in range(4)] + [(1, 0, None), (1, 1, None)] + [(1, b, (1, 2)) for b in (2, 3)]
    assert keras_backup.saved_position(tmp_path) is None  # the end of fit removes it, as at the end of a run
