"""--mixed_precision: auto's choice on each kind of hardware and backbone (the queries mocked), and a bfloat16 run on
two devices that resumes, refuses another precision and exports float32 weights."""

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, SMALL, run_training
from test_predict import keras_probabilities

import predict
import train
from precision import auto_precision


@pytest.mark.parametrize(
    "capabilities, flags, backbone, precision",
    [
        ([(8, 0)], set(), "efficientnetb4", "bfloat16"),
        ([(9, 0), (8, 6)], set(), "resnet18", "bfloat16"),
        ([(7, 5)], {"amx_bf16"}, "resnet18", "float16"),  # training on the GPUs: the CPU does not count
        ([(8, 6), (7, 0)], set(), "resnet18", "float16"),  # the slowest GPU decides
        ([(6, 1)], set(), "resnet18", "float32"),
        ([], {"avx512f", "amx_bf16", "amx_tile"}, "resnet18", "bfloat16"),
        ([], {"avx512_bf16"}, "resnet34", "bfloat16"),
        ([], {"amx_bf16", "avx512_bf16"}, "efficientnetb4", "float32"),  # slower in bfloat16 on such a CPU
        ([], {"amx_bf16"}, "mobilenetv2", "float32"),
        ([], {"avx2", "avx512f"}, "resnet18", "float32"),
    ],
)
def test_auto_chooses_by_the_gpus_or_else_the_cpu_and_backbone(capabilities, flags, backbone, precision):
    assert auto_precision(capabilities, flags, backbone)[0] == precision


@pytest.mark.parametrize(
    "asked, resumed, precision, says",
    [
        ("auto", None, "bfloat16", "computing in bfloat16 (auto: a CPU with amx_bf16)"),
        ("auto", {"args": {"mixed_precision": False}}, "float32", "computing in float32 (auto: the resumed run's)"),
        ("float16", None, "float16", "computing in float16 (as asked; auto would take bfloat16 here: a CPU with"),
    ],
)
def test_the_start_line_says_which_precision_and_why(monkeypatch, capsys, asked, resumed, precision, says):
    monkeypatch.setattr(train, "gpu_capabilities", lambda: [])
    monkeypatch.setattr(train, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    args = Namespace(mixed_precision=asked, backbone="resnet18")
    assert train.choose_precision(args, resumed, tf.distribute.get_strategy()) == precision
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
    train_py(synthetic_data, work, "--mixed_precision", "bfloat16", "--cpu_devices", "2", "--epochs", "1")
    config = json.loads((work / "tensorflow" / "run_config.json").read_text())["args"]
    assert config["mixed_precision"] == "bfloat16"
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
