"""Kills and signals at every point of a run: resumed, each run ends whole, nothing repeated or lost."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, SMALL
from conftest import run_training as run

import checkpoints
import model

EPOCHS = 3
# (point, epoch): see tests/kill_at.py; spread over a run from its first step to after its last epoch
KILL_POINTS = [
    ("step", 0),
    ("validation", 0),
    ("first_file", 0),
    ("staged", 1),
    ("before_backup", 1),
    ("after_backup", 1),
    ("step", 2),
    ("first_file", 2),
    ("after_last_epoch", 2),
]


def train_command(data_root: Path, work_dir: Path) -> list[str]:
    return ["--data_root", str(data_root), "--work_dir", str(work_dir), *SMALL, "--epochs", str(EPOCHS)]


def quiet_env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def assert_whole_run(work_dir: Path) -> None:
    """One history row for each epoch, every weights file loads, no backup or pending file left."""
    root = work_dir / "tensorflow"
    assert list(pd.read_csv(root / "logs" / "history.csv").epoch) == list(range(EPOCHS))
    weights = sorted(root.rglob("*.h5"))
    assert [p.name for p in weights] == ["best-weight_resnet18.h5", "last-weight_resnet18.h5"]
    net = model.create_model("resnet18", "none")
    for path in weights:
        net.load_weights(str(path))
    assert checkpoints.saved_position(root / "backup") is None and not list((root / "pending").glob("*"))


@pytest.mark.parametrize("point, epoch", KILL_POINTS)
def test_a_run_killed_anywhere_resumes_to_exactly_its_epochs(synthetic_data, tmp_path, point, epoch):
    command = [sys.executable, str(REPO / "tests" / "kill_at.py"), point, str(epoch)]
    killed = subprocess.run(
        command + train_command(synthetic_data, tmp_path), env=quiet_env(), capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run(synthetic_data, tmp_path, "--epochs", str(EPOCHS), "--resume")
    assert_whole_run(tmp_path)


def test_sigterm_stops_after_a_step_saves_it_and_says_how_to_continue(synthetic_data, tmp_path):
    args = train_command(synthetic_data, tmp_path)[:-2] + ["--epochs", "2", "--steps_per_epoch", "200"]
    process = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args], env=quiet_env(), stderr=subprocess.PIPE, text=True
    )
    history = tmp_path / "tensorflow" / "logs" / "history.csv"
    deadline = time.monotonic() + 240
    while not history.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(2)  # into the second epoch
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "SIGTERM received: stopped after step" in stderr and "--resume" in stderr.splitlines()[-1]
    epoch, step = checkpoints.saved_position(tmp_path / "tensorflow" / "backup")
    assert epoch == 1 and 0 <= step < 199
    run(synthetic_data, tmp_path, "--epochs", "2", "--steps_per_epoch", "200", "--resume")
    assert list(pd.read_csv(history).epoch) == [0, 1]
