"""A run's work folder, WORK/tensorflow/: its paths, the rule that never loses a run (resume an interrupted one,
replace one only when asked, one run at a time), the folder of a worker that is not the chief, and run_config.json."""

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import platform
import shutil
import socket
import tempfile
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterator, Optional

from segtf.errors import UserError
from segtf.files import write_text
from segtf.modeling.precision import saved_precision
from segtf.training import checkpoints

import tensorflow as tf

LOCK_FILE = "run.lock"  # in WORK/tensorflow/: who holds the folder, while a run is under way

PACKAGES = [
    "tensorflow",
    "tf-keras",  # Keras 2 on TensorFlow 2.16 and later; not installed with 2.15
    "segmentation-models",
    "tensorflow-addons",
    "albumentations",
    "numpy",
    "opencv-python-headless",
]


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Every file and folder a run writes, under root (WORK/tensorflow/)."""

    root: Path
    best: Path  # weights/best-weight_<backbone>.h5: the best --monitor
    last: Path  # weights/last-weight_<backbone>.h5
    history: Path  # logs/history.csv: a row an epoch
    pictures: Path  # logs/validation_pictures.png
    curves: Path  # logs/training_curves.png
    tensorboard: Path  # logs/tensorboard/<start time>/
    backup: Path  # what --resume continues from, while the run is under way
    final: Path  # the backup after the last epoch, which --resume --epochs M continues
    pending: Path  # each epoch's files before they are committed (checkpoints.py)
    config: Path  # run_config.json
    out_of_fold: Path  # with --folds: the best weights' probabilities of the fold's validation images

    def moved_to(self, root: Path) -> "RunPaths":
        """The same files under another root, but the backup, which stays where it is."""
        moved = {f.name: root / getattr(self, f.name).relative_to(self.root) for f in dataclasses.fields(self)}
        return RunPaths(**{**moved, "root": root, "backup": self.backup})


def work_paths(work_dir: Path, backbone: str) -> RunPaths:
    root = work_dir / "tensorflow"
    return RunPaths(
        root=root,
        best=root / "weights" / f"best-weight_{backbone}.h5",
        last=root / "weights" / f"last-weight_{backbone}.h5",
        history=root / "logs" / "history.csv",
        pictures=root / "logs" / "validation_pictures.png",
        curves=root / "logs" / "training_curves.png",
        tensorboard=root / "logs" / "tensorboard" / datetime.now().strftime("%Y%m%d-%H%M%S"),
        backup=root / "backup",
        final=root / "final",
        pending=root / "pending",
        config=root / "run_config.json",
        out_of_fold=root / "out_of_fold",
    )


def run_finished(paths: RunPaths) -> bool:
    """True when the run in paths finished: it has epochs in its history and left no backup."""
    return checkpoints.saved_position(paths.backup) is None and len(checkpoints.read_history(paths.history)) > 0


@contextlib.contextmanager
def holding_work_dir(root: Path) -> Iterator[None]:
    """The folder root for this process alone while the block runs, or UserError naming the process and host that
    hold it. An advisory lock on root/run.lock, which the system releases when its process ends however it ends,
    so that a killed run's lock is taken over; the file says who holds it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = os.fdopen(os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT), "r+")
    except OSError as error:
        raise UserError(f"--work_dir: cannot write into {root}: {error.strerror or error}") from error
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            holder = handle.read().strip() or "another process"
            raise UserError(
                f"{root} is in use by {holder}: wait for that run to end, or choose another --work_dir"
            ) from error
        handle.truncate(0)
        handle.write(f"process {os.getpid()} on {socket.gethostname()} since {datetime.now():%Y-%m-%d %H:%M:%S}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


def check_work_dir(paths: RunPaths, args: argparse.Namespace) -> Optional[dict]:
    """Never lose a run: resume one that was interrupted, or replace one only when asked. Returns the
    run config of the run that --resume continues."""
    if not args.resume:
        if paths.config.exists() and not args.overwrite:
            raise UserError(
                f"{paths.root} holds an earlier run: --resume continues it if it was interrupted, "
                "--overwrite replaces it, or choose another --work_dir"
            )
        return None
    if not paths.config.exists():
        raise UserError(f"nothing to resume in {paths.root}: no run there")
    config = json.loads(paths.config.read_text())
    saved = config["args"]
    if run_finished(paths) and (args.epochs <= saved["epochs"] or not paths.final.is_dir()):
        finished = len(checkpoints.read_history(paths.history))
        of = f" of {saved['epochs']} (stopped early)" if finished < saved["epochs"] else ""
        way_on = f"--epochs above {saved['epochs']} continues it" if paths.final.is_dir() else "it kept no final state"
        raise UserError(
            f"nothing to resume in {paths.root}: its run finished after {finished} epochs{of} ({way_on}); "
            f"--overwrite replaces it, --init_weights {paths.last} starts a new run from its weights"
        )
    # a run from before a setting existed took its default
    changed = [
        k
        for k in ("arch", "backbone", "image_size", "patch_size", "scale", "folds", "ema", "classes")
        if saved.get(k, getattr(args, k)) != getattr(args, k)
    ]
    if args.mixed_precision != "auto" and saved_precision(saved.get("mixed_precision", True)) != args.mixed_precision:
        changed.append("mixed_precision")  # auto takes the run's
    if changed:
        raise UserError(f"--resume with other {', '.join(changed)} than the run in {paths.root}: {saved}")
    return config


def prepare_work_dir(paths: RunPaths, resume: bool) -> None:
    """Drop the backup, pending files and history of a run that is being replaced, so that nothing of
    it is resumed into this one, and make the folders for weights and logs."""
    try:
        if not resume:
            shutil.rmtree(paths.backup, ignore_errors=True)
            shutil.rmtree(paths.final, ignore_errors=True)
            shutil.rmtree(paths.pending, ignore_errors=True)
            shutil.rmtree(paths.out_of_fold, ignore_errors=True)
            paths.history.unlink(missing_ok=True)
        for folder in (paths.best.parent, paths.history.parent):
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--work_dir: cannot write into {paths.root}: {error.strerror or error}") from error


def worker_paths(paths: RunPaths, task_id: int) -> RunPaths:
    """A worker other than the chief writes what the chief writes, but into a temporary folder of its
    own, removed at the end. Only the backup is the chief's: every worker restores from it. The chief's
    history is copied in, so that every worker makes the same choices (such as saving best weights,
    in which all workers take part)."""
    moved = paths.moved_to(Path(tempfile.mkdtemp(prefix=f"train-worker{task_id}-")))
    for folder in (moved.best.parent, moved.history.parent):
        folder.mkdir(parents=True, exist_ok=True)
    if paths.history.exists():
        shutil.copyfile(paths.history, moved.history)
    return moved


def installed_versions() -> dict:
    """The version of each package that decides a run's results; None for one not installed (such as
    opencv-python-headless where opencv-python stands in for it)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def save_run_config(
    paths: RunPaths, args: argparse.Namespace, strategy: tf.distribute.Strategy, samples: dict, steps_per_epoch: int
) -> None:
    config = {
        "args": vars(args),
        "replicas": strategy.num_replicas_in_sync,
        "samples": samples,
        "steps_per_epoch": steps_per_epoch,
        "python": platform.python_version(),
        "versions": installed_versions(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    write_text(paths.config, json.dumps(config, indent=2) + "\n")
