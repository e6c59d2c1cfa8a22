"""Run train.py and SIGKILL it at one named point, or at step 2 of an epoch send it SIGTERM (point sigterm) or two
SIGINTs (point ctrl_c, a user pressing Ctrl-C twice): python tests/kill_at.py POINT EPOCH TRAIN_ARGS...

Used by training/test_checkpoints.py, training/test_resume.py and training/test_cluster.py, so that each kill or
signal lands exactly where it is meant to. Its process finds the segtf package through PYTHONPATH (helpers.PYTHONPATH).
"""

import os
import signal
import sys
from pathlib import Path

from segtf.cli import train
from segtf.training import checkpoints

import tensorflow as tf


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_around(cls: type, name: str, when: str, condition) -> None:
    """Wrap cls.name so that the process dies before or after the call for which condition holds."""
    original = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        hit = condition(self, *args)
        if hit and when == "before":
            kill()
        result = original(self, *args, **kwargs)
        if hit:
            kill()
        return result

    setattr(cls, name, wrapper)


def kill_after_replace(epoch: int, count: int) -> None:
    """Die after the count-th file of the epoch's commit has been moved into place."""
    original, moved = os.replace, []

    def replace(source, target):
        original(source, target)
        if Path(source).parent.name == str(epoch) and Path(source).parent.parent.name == "pending":
            moved.append(target)
            if len(moved) == count:
                kill()

    checkpoints.os.replace = replace


def main() -> None:
    point, epoch, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    committer, model = checkpoints.CommittedEpochs, tf.keras.Model
    in_epoch = lambda self, *args: self.epoch == epoch  # noqa: E731
    if point == "step":  # in the middle of an epoch's steps
        kill_around(committer, "on_train_batch_end", "after", lambda self, batch, *a: in_epoch(self) and batch == 1)
    elif point == "validation":  # while validating
        kill_around(committer, "on_test_begin", "before", in_epoch)
    elif point == "staged":  # the epoch's last weights written to pending, nothing else yet
        kill_around(model, "save_weights", "after", lambda self, path, *a: f"pending/{epoch}/" in str(path))
    elif point == "before_backup":  # history row and weights pending, backup not yet saved
        kill_around(committer, "save", "before", lambda self, *a: in_epoch(self))
    elif point == "after_backup":  # the epoch committed by its backup, its files not yet moved
        kill_around(committer, "save", "after", lambda self, *a: in_epoch(self))
    elif point == "first_file":  # right after the first weights file of the epoch appears in place
        kill_after_replace(epoch, 1)
    elif point in ("sigterm", "ctrl_c"):  # as if a scheduler, or a user at the keyboard, stopped the run
        signals = [signal.SIGTERM] if point == "sigterm" else [signal.SIGINT, signal.SIGINT]
        original = committer.on_train_batch_end

        def signalled(self, batch, logs=None):
            if in_epoch(self) and batch == 1:
                for signum in signals:
                    os.kill(os.getpid(), signum)
            original(self, batch, logs)

        committer.on_train_batch_end = signalled
    elif point == "after_last_epoch":  # every epoch committed, the backup not yet removed
        kill_around(committer, "on_train_end", "before", lambda self, *a: True)
    else:
        raise SystemExit(f"unknown point {point}")
    train.main(argv)


if __name__ == "__main__":
    main()
