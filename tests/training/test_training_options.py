"""The training options users expect from peers: other decoders (--arch fpn, linknet; our unetplusplus and
deeplabv3plus are test_decoder_runs.py's) that train, predict by windows and export; --init_weights, which starts a
run from another run's weights; --ema, whose averaged weights are validated and saved (and so exported); and --resume
--epochs M, which continues a finished run."""

import shutil
from pathlib import Path

from segtf.cli.train import train_args, train_config
from segtf.errors import UserError
from segtf.inference.predictor import load_model
from segtf.run_paths import work_paths
from segtf.training import run
from segtf.training.callbacks import make_callbacks
from segtf.training.workdir import prepare_work_dir, save_run_config

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import assert_whole_run, run_training, train_predict_and_export


@pytest.mark.parametrize("arch", ["fpn", "linknet"])
def test_other_decoders_train_predict_by_windows_and_export(arch, synthetic_data, tmp_path):
    """Our decoders' are training/test_decoder_runs.py's, with ONNX too."""
    train_predict_and_export(arch, synthetic_data, tmp_path, onnx=False)


def small_config(data: Path, work: Path, *flags: str):
    small = ["--backbone", "resnet18", "--image_size", "64", "--encoder_weights", "none", "--mixed_precision", "false"]
    return train_config(train_args(["--data_root", str(data), "--work_dir", str(work), *small, *flags]))


def test_init_weights_start_from_the_given_weights(trained, synthetic_data, tmp_path):
    weights = trained / "weights" / "best-weight_resnet18.h5"
    config = small_config(synthetic_data, tmp_path, "--init_weights", str(weights))
    model = run.build_model(config, tf.distribute.get_strategy(), steps=5)
    given, _ = load_model(weights, None, None)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), given.get_weights()))
    fresh = run.build_model(small_config(synthetic_data, tmp_path), tf.distribute.get_strategy(), steps=5)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), given.get_weights()))


def test_init_weights_of_another_architecture_is_one_line(trained, synthetic_data, tmp_path, capsys):
    weights = trained / "weights" / "best-weight_resnet18.h5"  # a Unet's
    with pytest.raises(SystemExit) as exit_info:
        run_training(synthetic_data, tmp_path, "--arch", "linknet", "--init_weights", str(weights), "--epochs", "1")
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert exit_info.value.code == 2 and len(errors) == 1 and "the weights of another model than a linknet" in errors[0]
    assert not (tmp_path / "tensorflow" / "run_config.json").exists()


def differ(first: list, second: list) -> bool:
    return not all(np.array_equal(a, b) for a, b in zip(first, second))


def test_ema_weights_are_validated_and_saved(synthetic_data, tmp_path):
    config = small_config(synthetic_data, tmp_path / "work", "--ema", "0.5", "--epochs", "1")
    paths = work_paths(tmp_path / "work", config.model.backbone)
    prepare_work_dir(paths, resume=False)
    strategy = tf.distribute.get_strategy()
    model = run.build_model(config, strategy, steps=3)
    batches, _, valid, _ = run.build_datasets(config, strategy)
    save_run_config(paths, config, strategy, {"train": 1, "valid": 1}, 3)  # how predict.py reads the weights
    trained = []  # the weights training goes on with, read after every callback of the epoch
    callbacks = make_callbacks(config, paths, model, valid, [], 3, chief=True)
    callbacks.append(tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: trained.append(model.get_weights())))
    history = model.fit(batches, epochs=1, steps_per_epoch=3, validation_data=valid, callbacks=callbacks, verbose=0)
    saved, _ = load_model(paths.best, None, None)
    assert differ(trained[0], saved.get_weights())
    assert not differ(model.get_weights(), saved.get_weights())  # Keras puts the average in at the end of fit
    averaged_loss = model.evaluate(valid, verbose=0, return_dict=True)["loss"]
    assert history.history["val_loss"][0] == pytest.approx(averaged_loss, rel=1e-5)
    model.set_weights(trained[0])
    assert model.evaluate(valid, verbose=0, return_dict=True)["loss"] != pytest.approx(averaged_loss, rel=1e-6)
    # the exports read the saved weights, which hold the average: export/test_convert.py checks them against Keras


def test_resume_with_more_epochs_continues_a_finished_run(trained, synthetic_data, tmp_path, capsys):
    work = tmp_path / "work"
    shutil.copytree(trained.parent, work)
    run_training(synthetic_data, work, "--epochs", "4", "--resume")
    assert_whole_run(work, 4)
    history = pd.read_csv(work / "tensorflow" / "logs" / "history.csv")
    first_two = pd.read_csv(trained / "logs" / "history.csv")
    pd.testing.assert_frame_equal(history.iloc[:2], first_two)  # nothing repeated or lost
    out = capsys.readouterr().out
    assert "resuming" in out and "after 2 finished epochs" in out
    assert "--epochs 4 instead of 2: the cosine schedule now spans 4 epochs" in out
    with pytest.raises(SystemExit) as exit_info:
        run_training(synthetic_data, work, "--epochs", "4", "--resume")
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and error.count("\n") == 0 and "--epochs above 4 continues it" in error


def test_a_truncated_weights_file_is_called_truncated(trained, tmp_path):
    cut = tmp_path / "cut.h5"
    cut.write_bytes((trained / "weights" / "best-weight_resnet18.h5").read_bytes()[:5000])
    with pytest.raises(UserError, match=f"--weights {cut}: cannot be read as weights, truncated or not an .h5 file"):
        load_model(cut, "resnet18", 64)
