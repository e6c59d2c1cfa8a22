"""Shared fixtures: copies of the real nails set and generated datasets, always in temporary folders."""

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras2  # noqa: F401

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAILS_DIR = Path(os.environ.get("NAILS_DIR", REPO.parent / "shared" / "data" / "nails"))
# The files whose tests take longest, longest first: pytest-xdist (-n 3 --dist loadfile in pyproject.toml) hands out
# whole files in the order collected, so that starting with these the workers finish at about the same time. Three
# workers on two cores: much of a test's time is single-threaded Python (tracing, imports), which a third fills.
LONGEST_FIRST = [
    "test_class_training.py", "test_train.py", "test_cluster.py", "test_classes.py", "test_cross_validation.py",
    "test_checkpoints.py", "test_resume.py", "test_faults.py", "test_predict.py", "test_training_options.py",
]  # fmt: skip


def pytest_collection_modifyitems(items: list) -> None:
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order


def copy_files(source: Path, target: Path) -> None:
    """Copy a tree without its permissions: the shared data is read-only, the copy must not be."""
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / path.relative_to(source))


@pytest.fixture
def nails(tmp_path: Path) -> Path:
    """A writable copy of the real nails set (flat layout: images/ and labels/ with JPEG masks)."""
    if not (NAILS_DIR / "images").is_dir():
        pytest.skip(f"real data not found at {NAILS_DIR}; set NAILS_DIR")
    copy_files(NAILS_DIR, tmp_path / "nails")
    return tmp_path / "nails"


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A small generated dataset in the layout DATA/{train,valid}/{images,masks}/<group>/, with four groups,
    prepared once for all tests."""
    import data_preparation

    data_root = tmp_path_factory.mktemp("synthetic") / "data"
    data_preparation.main(["--data_root", str(data_root), "--synthetic", "48", "--workers", "2"])
    return data_root


@pytest.fixture
def float16_policy():
    """Run a test under the mixed_float16 Keras policy, restoring float32 after it."""
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    tf.keras.mixed_precision.set_global_policy("float32")


STEPS = 5  # SMALL's steps an epoch
SMALL = ["--backbone", "resnet18", "--image_size", "64", "--batch_size", "8", "--encoder_weights", "none",
         "--mixed_precision", "false", "--device", "cpu", "--steps_per_epoch", str(STEPS)]  # fmt: skip


def run_training(data_root: Path, work_dir: Path, *flags: str) -> None:
    """train.py with a small model on small images, on the CPU."""
    import train

    train.main(["--data_root", str(data_root), "--work_dir", str(work_dir), *SMALL, *flags])


@pytest.fixture(scope="session")
def trained(synthetic_data, tmp_path_factory, worker_id: str) -> Path:
    """One 2-epoch run with TensorBoard logs, shared by every test that only needs a trained model, and by the
    workers of pytest-xdist: the first that asks trains it (on its own copy of the generated data, which is the
    same on every worker), the others wait for it and read it. No test writes into it."""
    if worker_id == "master":  # no workers: this run's own folder
        work_dir = tmp_path_factory.mktemp("work")
        run_training(synthetic_data, work_dir, "--epochs", "2", "--log", "tensorboard")
        return work_dir / "tensorflow"
    shared = tmp_path_factory.getbasetemp().parent  # this pytest run's, common to its workers
    with open(shared / "trained.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (shared / "trained.done").exists():
            shutil.rmtree(shared / "trained", ignore_errors=True)  # a worker that failed half-way
            run_training(synthetic_data, shared / "trained", "--epochs", "2", "--log", "tensorboard")
            (shared / "trained.done").touch()
    return shared / "trained" / "tensorflow"


def run_to(point: str, epoch: int, data_root: Path, work_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    """train.py with a small model, in a process of its own that tests/kill_at.py kills or signals at point."""
    command = [sys.executable, str(REPO / "tests" / "kill_at.py"), point, str(epoch), "--data_root", str(data_root),
               "--work_dir", str(work_dir), *SMALL, *flags]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def assert_whole_run(work_dir: Path, epochs: int) -> None:
    """One history row for each epoch, every weights file loads, no backup or pending file left."""
    import pandas as pd

    import checkpoints
    import model

    root = work_dir / "tensorflow"
    assert list(pd.read_csv(root / "logs" / "history.csv").epoch) == list(range(epochs))
    weights = sorted(root.rglob("*.h5"))
    assert [p.name for p in weights] == ["best-weight_resnet18.h5", "last-weight_resnet18.h5"]
    net = model.create_model("resnet18", "none")
    for path in weights:
        net.load_weights(str(path))
    assert checkpoints.saved_position(root / "backup") is None and not list((root / "pending").glob("*"))
