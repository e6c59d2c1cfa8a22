"""train.py, the command: its flags (defaults by optimizer, booleans, ranges, the flags that need each other) and the
faults it refuses before training in one line (no such GPU, ImageNet weights offline, W&B without login, an earlier
run in the work folder)."""

from segtf.cli import train
from segtf.cli.train import train_args, train_config

import pytest
import tensorflow as tf
from helpers import SMALL
from helpers import run_training as run


def optimization(*flags: str):
    return train_config(train_args(["--data_root", "d", *flags])).optimization


def test_each_optimizer_has_its_own_defaults_unless_given():
    assert (optimization().optimizer, optimization().learning_rate, optimization().weight_decay) == (
        "adamw",
        1e-3,
        0.05,
    )
    assert (optimization("--optimizer", "sgd").learning_rate, optimization("--optimizer", "sgd").weight_decay) == (
        0.01,
        3e-5,
    )
    assert optimization("--optimizer", "sgd", "--learning_rate", "0.1").learning_rate == 0.1


def test_negative_weight_decay_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        train_args(["--data_root", "d", "--weight_decay", "-1"])
    assert stop.value.code == 2 and "--weight_decay: must be a finite number of at least 0" in capsys.readouterr().err


@pytest.mark.parametrize("text, value", [("False", False), ("0", False), ("no", False), ("True", True), ("1", True)])
def test_booleans_parse_as_written(text, value):
    assert train_args(["--data_root", "d", "--augment", "none", "--resize_first", text]).resize_first is value


@pytest.mark.parametrize(
    "text, precision",
    [("True", "float16"), ("1", "float16"), ("False", "float32"), ("no", "float32"), ("BFloat16", "bfloat16")],
)
def test_mixed_precision_takes_a_type_or_a_boolean(text, precision):
    assert train_args(["--data_root", "d", "--mixed_precision", text]).mixed_precision == precision
    assert train_args(["--data_root", "d"]).mixed_precision == "auto"


def test_bare_boolean_flags_mean_true():
    assert train_args(["--data_root", "d", "--resume"]).resume is True
    assert train_args(["--data_root", "d", "--resume", "True"]).resume is True
    assert train_args(["--data_root", "d"]).resume is False


def test_image_size_must_be_a_multiple_of_32(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_args(["--data_root", "d", "--image_size", "100"])
    assert exit_info.value.code == 2 and "multiple of 32" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--batch_size", "--epochs", "--cpu_devices"])
def test_counts_below_1_exit_2(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_args(["--data_root", "d", "--device", "cpu", flag, "0"])
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be a whole number of at least 1" in capsys.readouterr().err


def test_missing_gpu_exits_2_naming_the_gpus(synthetic_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data_root", str(synthetic_data), "--work_dir", str(tmp_path), "--device", "99"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: --device 99: no such GPU; this machine has ")


def test_imagenet_weights_offline_exit_2_with_the_ways_out(synthetic_data, tmp_path, capsys, monkeypatch):
    attempts = []

    def offline(*args, **kwargs):  # what Keras raises when the download fails
        attempts.append(kwargs.get("origin", args[1] if len(args) > 1 else None))
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tf.keras.utils, "get_file", offline)
    flags = [f for f in SMALL if f != "none"]
    flags[flags.index("--encoder_weights") + 1 : flags.index("--encoder_weights") + 1] = ["imagenet"]
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data_root", str(synthetic_data), "--work_dir", str(tmp_path), *flags, "--epochs", "1"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert attempts and exit_info.value.code == 2
    assert "could not download the ImageNet weights" in error and "--encoder_weights none" in error


def test_an_earlier_run_is_never_overwritten_silently(trained, synthetic_data, capsys):
    before = (trained / "weights" / "best-weight_resnet18.h5").read_bytes()
    for flags in ([], ["--resume"]):
        with pytest.raises(SystemExit) as exit_info:
            run(synthetic_data, trained.parent, "--epochs", "2", *flags)
        assert exit_info.value.code == 2
    errors = capsys.readouterr().err
    assert "holds an earlier run" in errors and "nothing to resume" in errors
    assert (trained / "weights" / "best-weight_resnet18.h5").read_bytes() == before


def test_wandb_online_without_login_exits_2_before_training(synthetic_data, tmp_path, monkeypatch, capsys, fresh_wandb):
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    with pytest.raises(SystemExit) as exit_info:
        run(synthetic_data, tmp_path / "work", "--epochs", "1", "--log", "wandb")
    assert exit_info.value.code == 2 and "not logged in" in capsys.readouterr().err
    assert not (tmp_path / "work" / "tensorflow" / "run_config.json").exists()


@pytest.mark.parametrize("flags, says", [
    (["--patch_size", "64", "--monitor", "val_loss"], "--patch_size validates whole images by sliding windows"),
    (["--tta", "flip"], "--tta flip applies to the sliding-window validation of --patch_size"),
])  # fmt: skip
def test_patch_validation_flags_need_each_other(flags, says, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_args(["--data_root", "d", *flags])
    assert exit_info.value.code == 2 and says in capsys.readouterr().err
