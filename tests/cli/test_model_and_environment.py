"""model.py, which says what network train.py builds, and utils.py, which says what this machine offers a run."""

from segtf.cli import environment, model_summary

import pytest


def test_model_py_says_the_networks_size_input_and_output(capsys):
    model_summary.main(["--backbone", "resnet18", "--classes", "3", "--image_size", "64"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("unet on resnet18, 3 classes: 14,340,860 parameters (14,330,934 trainable)")
    assert line.endswith("input 64 x 64 x 3, output 64 x 64 x 3")


def test_model_py_refuses_an_unknown_backbone_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        model_summary.main(["--backbone", "resnet19"])
    errors = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(errors) == 1 and errors[0].startswith("error: --backbone resnet19 is not")


def test_utils_py_names_the_machine_and_the_precision_auto_would_take(capsys, monkeypatch):
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    monkeypatch.setattr(environment, "gpu_capabilities", lambda: [])
    environment.main(["--backbone", "resnet18"])
    out = capsys.readouterr().out
    assert out.startswith("Python ") and "packages: tensorflow " in out and "GPUs: none visible" in out
    assert "CPU: " in out and ", amx_bf16" in out
    assert "--mixed_precision auto with --backbone resnet18: bfloat16 (a CPU with amx_bf16)" in out
