"""A run's work folder, WORK/tensorflow/: its paths, the rule that never loses a run (resume an interrupted one,
replace one only when asked, one run at a time), the folder of a worker that is not the chief, and run_config.json."""

import contextlib
import fcntl
import os
import platform
import shutil
import socket
import tempfile
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterator, Optional

from segtf.config import SavedRun, TrainConfig, read_run_config, write_run_config
from segtf.errors import UserError
from segtf.run_paths import RunPaths
from segtf.text import counted
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


def run_finished(paths: RunPaths) -> bool:
    """True when the run in paths finished: it has epochs in its history and left no backup."""
    return checkpoints.saved_position(paths.backup) is None and len(checkpoints.read_history(paths.history)) > 0


@contextlib.contextmanager
def holding_work_dir(root: Path) -> Iterator[None]:
    """The folder root for this process alone while the block runs, or UserError naming the process and host that
    hold it. An advisory lock on root/run.lock, which the system releases when its process ends however it ends,
    so that a killed run's lock is taken over; the file says who holds it. A run that wrote nothing (refused) leaves
    no lock file and no folder it made behind."""
    made = [folder for folder in (root, *root.parents) if not folder.exists()]
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
            if made and [p.name for p in root.iterdir()] == [LOCK_FILE]:  # unlinked while still held
                (root / LOCK_FILE).unlink()
                for folder in made:
                    with contextlib.suppress(OSError):  # not empty: something else is there
                        folder.rmdir()


def check_work_dir(paths: RunPaths, config: TrainConfig) -> Optional[SavedRun]:
    """Never lose a run: resume one that was interrupted, or replace one only when asked. Returns the
    run that --resume continues."""
    if not config.run.resume:
        if paths.config.exists() and not config.run.overwrite:
            raise UserError(
                f"{paths.root} holds an earlier run: --resume continues it if it was interrupted, "
                "--overwrite replaces it, or choose another --work_dir"
            )
        return None
    if not paths.config.exists():
        raise UserError(f"nothing to resume in {paths.root}: no run there")
    resumed = read_run_config(paths.config)
    planned = resumed.config.optimization.epochs
    if run_finished(paths) and (config.optimization.epochs <= planned or not paths.final.is_dir()):
        finished = len(checkpoints.read_history(paths.history))
        of = f" of {planned} (stopped early)" if finished < planned else ""
        way_on = f"--epochs above {planned} continues it" if paths.final.is_dir() else "it kept no final state"
        raise UserError(
            f"nothing to resume in {paths.root}: its run finished after {counted(finished, 'epoch')}{of} ({way_on}); "
            f"--overwrite replaces it, --init_weights {paths.last} starts a new run from its weights"
        )
    saved, asked = resumed.config.flat(), config.flat()
    changed = [k for k in ("arch", "backbone", "image_size", "patch_size", "scale", "folds", "ema", "classes")
               if saved[k] != asked[k]]  # fmt: skip
    if asked["mixed_precision"] not in ("auto", saved["mixed_precision"]):
        changed.append("mixed_precision")  # auto takes the run's
    if changed:
        raise UserError(f"--resume with other {', '.join(changed)} than the run in {paths.root}: {saved}")
    return resumed


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
    paths: RunPaths, config: TrainConfig, strategy: tf.distribute.Strategy, samples: dict, steps_per_epoch: int
) -> None:
    record = {
        "replicas": strategy.num_replicas_in_sync,
        "samples": samples,
        "steps_per_epoch": steps_per_epoch,
        "python": platform.python_version(),
        "versions": installed_versions(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    write_run_config(paths.config, config, record)
