"""The training options users expect from peers: other decoders (--arch fpn, linknet) that train, predict by
windows and export; and --init_weights, which starts a run from another run's weights."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_training

import predict
import train
from inference import ensemble_probabilities, load_member, load_model, read_rgb


@pytest.mark.parametrize("arch", ["fpn", "linknet"])
def test_other_decoders_train_predict_by_windows_and_export(arch, synthetic_data, tmp_path):
    run_training(synthetic_data, tmp_path / "work", "--arch", arch, "--epochs", "1")
    weights = tmp_path / "work" / "tensorflow" / "weights" / "best-weight_resnet18.h5"
    image = sorted((synthetic_data / "png" / "valid" / "images").rglob("*.png"))[0]
    out = tmp_path / "out"
    predict.main(["--weights", str(weights), "--input", str(image), "--patch_size", "64", "--export", "savedmodel",
                  "--output", str(out)])  # fmt: skip
    photo = read_rgb(image)
    assert read_rgb(out / "masks" / image.name).shape == photo.shape  # by windows, at the image's size
    member = load_member(weights, {"patch_size": 64, "overlap": 0.5, "batch_size": 8})
    assert member.model.name == f"{arch}_resnet18" and member.windows
    _, _, expected = next(ensemble_probabilities([member], [image], 8, None, {}))
    serve = tf.saved_model.load(str(out / "savedmodel")).signatures["serving_default"]
    served = serve(images=tf.constant(photo[None]))["probabilities"].numpy()[0, ..., 0]
    assert np.abs(served - expected).max() < 1e-4


def small_args(data: Path, work: Path, *flags: str):
    small = ["--backbone", "resnet18", "--image_size", "64", "--encoder_weights", "none", "--mixed_precision", "false"]
    return train.train_args(["--data_root", str(data), "--work_dir", str(work), *small, *flags])


def test_init_weights_start_from_the_given_weights(trained, synthetic_data, tmp_path):
    weights = trained / "weights" / "best-weight_resnet18.h5"
    args = small_args(synthetic_data, tmp_path, "--init_weights", str(weights))
    model = train.build_model(args, tf.distribute.get_strategy(), steps=5)
    given, _ = load_model(weights, None, None)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), given.get_weights()))
    fresh = train.build_model(small_args(synthetic_data, tmp_path), tf.distribute.get_strategy(), steps=5)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), given.get_weights()))


def test_init_weights_of_another_architecture_is_one_line(trained, synthetic_data, tmp_path, capsys):
    weights = trained / "weights" / "best-weight_resnet18.h5"  # a Unet's
    with pytest.raises(SystemExit) as exit_info:
        run_training(synthetic_data, tmp_path, "--arch", "linknet", "--init_weights", str(weights), "--epochs", "1")
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert exit_info.value.code == 2 and len(errors) == 1 and "does not fit a linknet" in errors[0]
    assert not (tmp_path / "tensorflow" / "run_config.json").exists()
