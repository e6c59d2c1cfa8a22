"""A run's files kept whole whenever the run is killed, and stopped cleanly on a signal.

Each epoch ends in three moves. Its history row, last weights and (when they improve) best weights
are written into WORK/tensorflow/pending/<epoch>/; the BackupAndRestore checkpoint of that epoch is
saved, which commits the epoch; the pending files are moved into place with os.replace. Before
training, `recover` finishes a commit that a kill interrupted, or drops an epoch that was never
committed, so that history.csv has exactly one row for each epoch that the backup holds. The backup is
Keras' BackupAndRestore, reached through keras_backup.py only.
"""

import contextlib
import math
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Iterator, Optional

from segtf.checked import Source, read_table
from segtf.errors import UserError
from segtf.modeling.ema import averaged_weights
from segtf.run_paths import RunPaths
from segtf.training.keras_backup import StepBackup, saved_position

import pandas as pd

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(Exception):
    """Training stopped on a signal, after saving what --resume needs."""

    def __init__(self, signum: int, epoch: int, step: Optional[int]):
        self.signum = signum
        where = f"after step {step + 1} of epoch {epoch + 1}" if step is not None else f"after epoch {epoch + 1}"
        super().__init__(f"{signal.Signals(signum).name} received: stopped {where}")


def committed_epochs(backup: Path, steps: int) -> int:
    """How many epochs the backup holds as finished (a backup made mid-epoch does not count its epoch)."""
    position = saved_position(backup)
    if position is None:
        return 0
    epoch, step = position
    return epoch + 1 if step == steps - 1 else epoch


def monitor_mode(monitor: str) -> str:
    return "min" if monitor.endswith("loss") else "max"


def best_epoch(history: pd.DataFrame, monitor: str) -> pd.Series:
    """The row of history with the best value of monitor."""
    return history.loc[history[monitor].idxmin() if monitor_mode(monitor) == "min" else history[monitor].idxmax()]


def read_history(path: Path) -> pd.DataFrame:
    """A run's history.csv, a row an epoch (empty before the first); UserError when it is not one."""
    if not path.exists() or not path.stat().st_size:
        return pd.DataFrame()
    return read_table(Source(path, "train.py writes it; give the work folder of a run"), {"epoch": "whole"})


def commit(pending: Path, paths: RunPaths) -> None:
    """Move one epoch's pending files into place; safe to repeat after a kill half-way."""
    destinations = {p.name: p for p in (paths.best, paths.last, paths.history)}
    for name in sorted(os.listdir(pending), key=lambda n: n == paths.history.name):  # history last
        os.replace(pending / name, destinations[name])


def recover(paths: RunPaths, steps: int) -> int:
    """Finish the commit of every epoch the backup holds and drop the files of any other; return the
    number of finished epochs. A finished run asked for more epochs continues from its final state."""
    if saved_position(paths.backup) is None and paths.final.is_dir():
        shutil.rmtree(paths.backup, ignore_errors=True)
        os.replace(paths.final, paths.backup)
    finished = committed_epochs(paths.backup, steps)
    for pending in sorted(paths.pending.glob("*")) if paths.pending.is_dir() else []:
        if int(pending.name) < finished:
            commit(pending, paths)
        shutil.rmtree(pending)
    rows = len(read_history(paths.history))
    if rows != finished:
        raise UserError(
            f"{paths.history} has {rows} epochs but the backup in {paths.backup} has {finished}: "
            "they were not written by this version of train.py; --overwrite starts the run again"
        )
    return finished


class CommittedEpochs(StepBackup):
    """BackupAndRestore whose backup also commits each epoch's history row and weights, which stops on
    a NaN loss, and which stops between two steps on SIGTERM or Ctrl-C, saving the step for --resume."""

    def __init__(self, paths: RunPaths, monitor: str, steps: int):
        super().__init__(paths.backup, paths.final)
        self.paths, self.monitor, self.mode, self.steps = paths, monitor, monitor_mode(monitor), steps
        self.stop_signal: Optional[int] = None

    def request_stop(self, signum: int, frame: object) -> None:
        if self.stop_signal is not None:  # a second signal stops at once; what was committed stays
            raise KeyboardInterrupt
        self.stop_signal = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this step", file=sys.stderr)

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self.request_stop) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        super().on_train_batch_end(batch, logs)
        if logs and not math.isfinite(float(logs["loss"])):
            raise UserError(
                f"the loss became {float(logs['loss'])} in epoch {self.epoch + 1}, step {batch + 1}: "
                "try a lower --learning_rate; the weights of the last finished epoch are kept"
            )
        if self.stop_signal is not None and batch < self.steps - 1:  # at the last step, the epoch ends first
            self.save()
            raise StopRequested(self.stop_signal, self.epoch, batch)

    def is_better(self, value: float, history: pd.DataFrame) -> bool:
        if history.empty:
            return True
        best = best_epoch(history, self.monitor)[self.monitor]
        return value < best if self.mode == "min" else value > best

    def stage(self, epoch: int, logs: dict) -> Path:
        """Write the epoch's weights and history into its pending folder; UserError if they cannot be."""
        pending = self.paths.pending / str(epoch)
        try:
            pending.mkdir(parents=True, exist_ok=True)
            history = read_history(self.paths.history)
            with averaged_weights(self.model):  # the model's own weights without --ema
                self.model.save_weights(str(pending / self.paths.last.name))
                if self.is_better(logs[self.monitor], history):
                    self.model.save_weights(str(pending / self.paths.best.name))
            rows = pd.concat([history, pd.DataFrame([{"epoch": epoch, **logs}])], ignore_index=True)
            rows.to_csv(pending / self.paths.history.name, index=False)
        except OSError as error:
            raise UserError(
                f"cannot write epoch {epoch + 1}'s checkpoint into {pending}: {error.strerror or error}; "
                "the earlier epochs are kept, --resume continues from them once there is room"
            ) from error
        return pending

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = {k: float(v) for k, v in sorted((logs or {}).items())}
        pending = self.stage(epoch, logs)
        self.save()  # the commit point
        commit(pending, self.paths)
        pending.rmdir()
        if self.stop_signal is not None:
            raise StopRequested(self.stop_signal, epoch, None)
