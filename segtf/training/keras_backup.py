"""The one adapter over the private members of Keras' BackupAndRestore that crash safety relies on: a backup made when
asked (between two steps, or at an epoch's end), the epoch under way, where a backup says it was made, and the chief's
backup kept at the end of training. Nothing else in the project touches them.

Tested on Keras 2.15 (TensorFlow 2.15.1) and tf-keras 2.21 (TensorFlow 2.21): tests/test_checkpoints.py checks each
member on the installed version, and fails on a version not listed in TESTED_ON, so that an update that changes them
fails a test instead of leaving runs that cannot be resumed.
"""

import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

import tensorflow as tf

TESTED_ON = {"keras": ["2.15"], "tf-keras": ["2.21"]}  # major.minor of the package that provides tf.keras
# An int save_freq makes Keras record each step in the backup ("epoch" records none); one this large is never reached,
# so that every backup is one that StepBackup.save makes.
NEVER = 2**62


def keras_package() -> tuple[str, str]:
    """(package, major.minor) of the Keras 2 that tf.keras is: tf-keras where installed, else keras."""
    for name in ("tf-keras", "keras"):
        try:
            return name, ".".join(version(name).split(".")[:2])
        except PackageNotFoundError:
            continue
    raise RuntimeError("neither tf-keras nor keras is installed")


class StepBackup(tf.keras.callbacks.BackupAndRestore):
    """BackupAndRestore that backs up only when save() is called, at an epoch's end or after a step, and whose
    chief moves its backup to final_dir at the end of training (the whole training state after the last epoch)
    instead of deleting it."""

    def __init__(self, backup_dir: Path, final_dir: Optional[Path] = None):
        super().__init__(str(backup_dir), save_freq=NEVER)
        self.final_dir = final_dir

    @property
    def epoch(self) -> int:
        """The epoch under way, from 0."""
        return self._current_epoch

    def save(self) -> None:
        """Back up the model, the optimizer and Keras' counters: the epoch under way and the last step begun, which
        at an epoch's end is its last step (Keras records these as the epoch and each step begin)."""
        self._backup(epoch=self._current_epoch)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        state = self._training_state
        if self.final_dir and state.write_checkpoint_manager is state.read_checkpoint_manager:  # the chief's
            shutil.rmtree(self.final_dir, ignore_errors=True)
            os.replace(self.backup_dir, self.final_dir)
        super().on_train_end(logs)  # deletes the backup, if still there


def saved_position(backup_dir: Path) -> Optional[tuple[int, int]]:
    """(epoch, step) at which the newest backup in backup_dir was saved, or None without one."""
    checkpoint = tf.train.latest_checkpoint(str(backup_dir / "chief"))
    if checkpoint is None:
        return None
    reader = tf.train.load_checkpoint(checkpoint)
    return tuple(int(reader.get_tensor(f"ckpt_saved_{k}/.ATTRIBUTES/VARIABLE_VALUE")) for k in ("epoch", "batch"))
