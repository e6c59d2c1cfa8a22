"""Shared fixtures: copies of the real nails set and generated datasets, always in temporary folders, and the shared
trained model. The helpers that tests call are helpers.py's."""

import fcntl
import os
import shutil
from pathlib import Path

import segtf  # noqa: F401  (sets Keras 2 up before any test imports TensorFlow)

import pytest
from helpers import REPO, run_training

TESTS = Path(__file__).resolve().parent
NAILS_DIR = Path(os.environ.get("NAILS_DIR", REPO.parent / "shared" / "data" / "nails"))
# Three pytest workers share two cores with the train.py processes that tests start; TensorFlow sizes its thread pools
# for the whole machine in each process, and they spin against each other. One thread a pool: 18 % less CPU time on the
# longest files (docs/benchmarks.md). Set before any test makes a TensorFlow context, and inherited by child processes.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# The files whose tests take longest, longest first, by their path under tests/: pytest-xdist (-n 3 --dist loadfile in
# pyproject.toml) hands out whole files in the order collected, so that starting with these the workers finish at
# about the same time. Three workers on two cores: much of a test's time is single-threaded Python (tracing, imports),
# which a third fills.
LONGEST_FIRST = [
    "training/test_cluster.py", "training/test_training_options.py", "training/test_checkpoints.py",
    "cli/test_faults.py", "export/test_checked.py", "training/test_run.py", "evaluation/test_cross_validation.py",
    "training/test_mixed_precision.py", "training/test_resume.py", "cli/test_class_runs.py",
    "cli/test_class_training.py", "export/test_convert.py", "modeling/test_network.py",
]  # fmt: skip


def pytest_collection_modifyitems(items: list) -> None:
    def rank(item) -> int:
        name = item.path.relative_to(TESTS).as_posix()
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
    from segtf.cli import prepare

    data_root = tmp_path_factory.mktemp("synthetic") / "data"
    prepare.main(["--data_root", str(data_root), "--synthetic", "48", "--workers", "2"])
    return data_root


@pytest.fixture
def fresh_wandb():
    """Weights & Biases keeps its settings in a process-wide singleton made when it is first used, so that a test
    setting WANDB_MODE after another test used it would get the other's: each such test gets a fresh one, and leaves
    none behind."""
    import wandb

    wandb.teardown()
    yield
    wandb.teardown()


@pytest.fixture
def float16_policy():
    """Run a test under the mixed_float16 Keras policy, restoring float32 after it."""
    import tensorflow as tf

    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    tf.keras.mixed_precision.set_global_policy("float32")


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
