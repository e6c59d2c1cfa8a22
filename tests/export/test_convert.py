"""predict.py --export savedmodel tflite: the SavedModel loads without segmentation_models and agrees with the Keras
model, by windows too for a patch run; the TFLite model's masks agree with Keras'."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from segtf.cli import predict
from segtf.dataset.input_scaling import resize_for_model
from segtf.export import checked, convert
from segtf.inference import predictor, sliding_window

import cv2
import numpy as np
import pytest
import tensorflow as tf
from helpers import keras_probabilities, weights_of


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported")
    predict.main(["--weights", weights_of(trained), "--export", "savedmodel", "tflite", "--output", str(out)])
    return out


LOAD_WITHOUT_SEGMENTATION_MODELS = """
import sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(images=tf.constant(np.load(sys.argv[2])))["probabilities"].numpy()
np.save(sys.argv[3], out)
libraries = ("segmentation_models", "efficientnet", "classification_models")
assert not any(name.startswith(libraries) for name in sys.modules)
"""


def test_savedmodel_loads_without_segmentation_models_and_agrees_with_keras(
    trained, synthetic_data, exported, tmp_path
):
    image = cv2.cvtColor(
        cv2.imread(str(sorted((synthetic_data / "valid" / "images").rglob("*.*"))[0])), cv2.COLOR_BGR2RGB
    )
    np.save(tmp_path / "image.npy", image[None])
    command = [sys.executable, "-c", LOAD_WITHOUT_SEGMENTATION_MODELS, str(exported / "savedmodel"),
               str(tmp_path / "image.npy"), str(tmp_path / "out.npy")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    served = np.load(tmp_path / "out.npy")
    assert served.shape == (1, *image.shape[:2], 1)
    assert np.abs(served[0, ..., 0] - keras_probabilities(trained, image)).max() < 1e-4


def test_tflite_masks_agree_with_keras(trained, synthetic_data, exported):
    run = checked.tflite_interpreter(exported / "model_float16.tflite").get_signature_runner()
    model, size = predictor.load_model(Path(weights_of(trained)), None, None)
    agreement = []
    for path in sorted((synthetic_data / "valid" / "images").rglob("*.*"))[:6]:
        image = resize_for_model(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)[None], size).numpy()
        lite = run(image=image)["probabilities"] > 0.5
        agreement.append((lite == (model(image, training=False).numpy() > 0.5)).mean())
    assert min(agreement) >= 0.99, agreement


def test_a_patch_runs_savedmodel_slides_windows_as_predict_py_does(trained, synthetic_data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained / "weights", run / "weights")
    config = json.loads((trained / "run_config.json").read_text())
    config["args"].update(patch_size=64, scale=0.5)
    (run / "run_config.json").write_text(json.dumps(config))
    weights = str(run / "weights" / "best-weight_resnet18.h5")
    predict.main(["--weights", weights, "--export", "savedmodel", "--output", str(tmp_path / "out")])
    image = cv2.cvtColor(
        cv2.imread(str(sorted((synthetic_data / "valid" / "images").rglob("*.*"))[0])), cv2.COLOR_BGR2RGB
    )
    np.save(tmp_path / "image.npy", image[None])
    command = [sys.executable, "-c", LOAD_WITHOUT_SEGMENTATION_MODELS, str(tmp_path / "out" / "savedmodel"),
               str(tmp_path / "image.npy"), str(tmp_path / "served.npy")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    model, _ = predictor.load_model(Path(weights), None, None)
    expected = sliding_window.predict_scaled(sliding_window.window_predictor(model), image, 0.5, 64)
    served = np.load(tmp_path / "served.npy")
    assert served.shape == (1, *image.shape[:2], 1) and np.abs(served[0, ..., 0] - expected).max() < 1e-4


def test_the_converters_statistics_stay_off_the_terminal_unless_asked(capfd, monkeypatch):
    inputs = tf.keras.Input((32, 32, 3))
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))
    images = np.random.default_rng(0).random((4, 32, 32, 3), np.float32)
    calibration = lambda: ([image[None]] for image in images)  # noqa: E731
    convert.convert_tflite(model, 32, "int8", calibration)
    assert "fully_quantize" not in capfd.readouterr().err
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    convert.convert_tflite(model, 32, "int8", calibration)
    assert "fully_quantize" in capfd.readouterr().err  # what the converter says, shown when asked
