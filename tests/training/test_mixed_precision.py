"""--mixed_precision in a training run: the start line that says auto's choice and why (the queries mocked), and a
bfloat16 run on two devices that resumes, refuses another precision and exports float32 weights. Auto's choice on each
kind of hardware: modeling/test_precision.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

from segtf.cli import predict
from segtf.config import SavedRun, TrainConfig
from segtf.training import run

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import REPO, SMALL, keras_probabilities, run_training


@pytest.mark.parametrize(
    "asked, resumed, precision, says",
    [
        ("auto", None, "bfloat16", "computing in bfloat16 (auto: a CPU with amx_bf16)"),
        ("auto", {"mixed_precision": False}, "float32", "computing in float32 (auto: the resumed run's)"),
        ("float16", None, "float16", "computing in float16 (as asked; auto would take bfloat16 here: a CPU with"),
    ],
)
def test_the_start_line_says_which_precision_and_why(monkeypatch, capsys, asked, resumed, precision, says):
    monkeypatch.setattr(run, "gpu_capabilities", lambda: [])
    monkeypatch.setattr(run, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    config = TrainConfig.from_flat({"data_root": "DATA", "mixed_precision": asked, "backbone": "resnet18"}, "flags")
    saved = resumed and SavedRun(TrainConfig.from_flat({"data_root": "DATA", **resumed}, "run_config.json"), 5)
    assert run.choose_precision(config, saved, tf.distribute.get_strategy()) == precision
    assert says in capsys.readouterr().out


def train_py(data_root: Path, work_dir: Path, *flags: str) -> str:
    """train.py with the small model in a process of its own (logical devices are set once a process), its output."""
    command = [sys.executable, str(REPO / "train.py"), "--data_root", str(data_root), "--work_dir", str(work_dir),
               *SMALL, *flags]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_a_bfloat16_run_on_two_devices_resumes_refuses_float32_and_exports(synthetic_data, tmp_path, capsys):
    work = tmp_path / "work"
    first_run = train_py(synthetic_data, work, "--mixed_precision", "bfloat16", "--cpu_devices", "2", "--epochs", "1")
    assert "8 = 2 device(s) x 4" in first_run  # MirroredStrategy splits the global batch
    record = json.loads((work / "tensorflow" / "run_config.json").read_text())
    assert record["args"]["mixed_precision"] == "bfloat16" and record["replicas"] == 2
    assert np.isfinite(pd.read_csv(work / "tensorflow" / "logs" / "history.csv").val_loss).all()
    weights = work / "tensorflow" / "weights" / "best-weight_resnet18.h5"
    with h5py.File(weights) as saved:
        dtypes = set()
        saved.visititems(lambda _, item: dtypes.add(item.dtype) if isinstance(item, h5py.Dataset) else None)
    assert dtypes == {np.dtype("float32")}

    resumed = train_py(
        synthetic_data, work, "--cpu_devices", "2", "--epochs", "2", "--resume", "--mixed_precision", "auto"
    )
    assert "computing in bfloat16 (auto: the resumed run's)" in resumed
    assert len((work / "tensorflow" / "logs" / "history.csv").read_text().strip().splitlines()) == 1 + 2
    with pytest.raises(SystemExit) as exit_info:
        run_training(synthetic_data, work, "--epochs", "3", "--resume", "--mixed_precision", "false")
    assert exit_info.value.code == 2 and "--resume with other mixed_precision" in capsys.readouterr().err

    predict.main(["--weights", str(weights), "--export", "savedmodel", "--output", str(tmp_path / "out")])
    first = sorted((synthetic_data / "valid" / "images").rglob("*.*"))[0]
    image = cv2.cvtColor(cv2.imread(str(first)), cv2.COLOR_BGR2RGB)
    serve = tf.saved_model.load(str(tmp_path / "out" / "savedmodel")).signatures["serving_default"]
    served = serve(images=tf.constant(image[None]))["probabilities"].numpy()[0, ..., 0]
    assert np.abs(served - keras_probabilities(work / "tensorflow", image)).max() < 1e-4
