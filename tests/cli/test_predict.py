"""predict.py: masks at each image's size, scores, exports that agree with the Keras model, pictures."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import deploy
import inference
import predict
import sliding_window
from input_scaling import resize_for_model, to_size


def weights_of(trained: Path) -> str:
    return str(trained / "weights" / "best-weight_resnet18.h5")


@pytest.fixture(scope="module")
def photos(synthetic_data, tmp_path_factory) -> Path:
    """A folder of original images of several sizes and formats, one in a subfolder, one corrupt."""
    folder = tmp_path_factory.mktemp("photos")
    sources = sorted((synthetic_data / "valid" / "images").rglob("*.*"))[:5]
    for i, source in enumerate(sources):
        target = folder / ("sub" if i == 0 else "") / source.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(source.read_bytes())
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


@pytest.fixture(scope="module")
def predicted(trained, photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predicted")
    (out / "keep.txt").write_text("a file of the user's")
    predict.main(["--weights", weights_of(trained), "--input", str(photos), "--output", str(out)])
    return out


def test_masks_have_each_images_size_and_only_0_and_255(photos, predicted):
    images = [p for p in photos.rglob("*.*") if p.name != "corrupt.png"]
    for image in images:
        relative = image.relative_to(photos)
        mask = cv2.imread(str(predicted / "masks" / relative.with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        assert mask.shape == cv2.imread(str(image)).shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
        assert (predicted / "overlays" / relative.with_suffix(".jpg")).exists()
    assert len(list((predicted / "masks").rglob("*.png"))) == len(images)


def test_a_corrupt_file_is_named_and_the_rest_written(trained, photos, tmp_path, capsys):
    predict.main(["--weights", weights_of(trained), "--input", str(photos), "--output", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "1 left out" in printed and "corrupt.png: does not decode" in printed
    assert not (tmp_path / "masks" / "corrupt.png").exists()


def test_images_sharing_a_name_stem_are_left_out_not_overwritten(trained, photos, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    image = next(p for p in photos.glob("*.*") if p.name != "corrupt.png")
    for suffix in (".png", ".bmp"):
        cv2.imwrite(str(folder / f"same{suffix}"), cv2.imread(str(image)))
    cv2.imwrite(str(folder / "other.png"), cv2.imread(str(image)))
    predict.main(["--weights", weights_of(trained), "--input", str(folder), "--output", str(tmp_path / "out")])
    assert "2 left out" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "out" / "masks").iterdir()] == ["other.png"]


def test_existing_files_in_the_output_folder_are_kept(predicted):
    assert (predicted / "keep.txt").read_text() == "a file of the user's"


def test_scoring_a_prepared_split_writes_metrics_and_a_comparison(trained, synthetic_data, tmp_path, capsys):
    predict.main(["--weights", weights_of(trained), "--data_root", str(synthetic_data), "--output", str(tmp_path)])
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert len(metrics) == len(pd.read_csv(synthetic_data / "csv_file" / "valid.csv"))
    assert {"iou", "f1", "precision", "recall", "true_foreground", "predicted_foreground"} <= set(metrics.columns)
    row = metrics.iloc[0]
    assert row.iou == pytest.approx(row.tp / (row.tp + row.fp + row.fn), abs=1e-6)
    printed = capsys.readouterr().out
    assert "micro (all pixels)" in printed and "five worst by IoU" in printed
    assert cv2.imread(str(tmp_path / "comparison.png")).shape[0] == 8 * 192


def test_scoring_against_a_masks_folder(trained, synthetic_data, tmp_path):
    images, masks = synthetic_data / "valid" / "images", synthetic_data / "valid" / "masks"
    predict.main(["--weights", weights_of(trained), "--input", str(images), "--masks", str(masks),
                  "--output", str(tmp_path)])  # fmt: skip
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == len(list(images.rglob("*.*")))


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported")
    predict.main(["--weights", weights_of(trained), "--export", "savedmodel", "tflite", "--output", str(out)])
    return out


def keras_probabilities(trained: Path, image: np.ndarray) -> np.ndarray:
    model, size = inference.load_model(Path(weights_of(trained)), None, None)
    probabilities = model(resize_for_model(image[None], size), training=False)
    return to_size(probabilities, image.shape[0], image.shape[1]).numpy()[0, ..., 0]


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
    run = deploy.tflite_interpreter(exported / "model_float16.tflite").get_signature_runner()
    model, size = inference.load_model(Path(weights_of(trained)), None, None)
    agreement = []
    for path in sorted((synthetic_data / "valid" / "images").rglob("*.*"))[:6]:
        image = resize_for_model(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)[None], size).numpy()
        lite = run(image=image)["probabilities"] > 0.5
        agreement.append((lite == (model(image, training=False).numpy() > 0.5)).mean())
    assert min(agreement) >= 0.99, agreement


def test_training_curves_are_plotted_from_a_history(trained, tmp_path):
    predict.main(["--history", str(trained / "logs" / "history.csv"), "--output", str(tmp_path)])
    assert cv2.imread(str(tmp_path / "training_curves.png")).shape[1] > 600


def test_weights_without_run_config_need_backbone_and_size(trained, tmp_path, capsys):
    lone = tmp_path / "w.h5"
    lone.write_bytes(Path(weights_of(trained)).read_bytes())
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--weights", str(lone), "--export", "tflite", "--output", str(tmp_path)])
    assert exit_info.value.code == 2 and "--backbone and --image_size" in capsys.readouterr().err


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
    model, _ = inference.load_model(Path(weights), None, None)
    expected = sliding_window.predict_scaled(sliding_window.window_predictor(model), image, 0.5, 64)
    served = np.load(tmp_path / "served.npy")
    assert served.shape == (1, *image.shape[:2], 1) and np.abs(served[0, ..., 0] - expected).max() < 1e-4
