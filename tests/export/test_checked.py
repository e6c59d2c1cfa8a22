"""The INT8 TFLite and ONNX exports of the shared trained model: their input contracts, their agreement with the
Keras model, their sizes, and their refusals."""

import contextlib
import io
import sys
from pathlib import Path

from segtf.cli import predict
from segtf.dataset.classes import IGNORED
from segtf.dataset.input_scaling import resize_for_model
from segtf.export import checked
from segtf.inference import predictor

import cv2
import numpy as np
import pytest
from helpers import weights_of


@pytest.fixture(scope="module")
def deployed(trained, synthetic_data, tmp_path_factory) -> tuple[Path, str, str]:
    """The three exports of one model, and what the export printed and wrote to stderr, with the agreement warning
    made to fire (the search for layers to keep in float, which the warning follows, is test_selective.py's)."""
    out = tmp_path_factory.mktemp("deployed")
    printed, errors = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        patch.setattr(checked, "AGREEMENT_WARNING", 1.01)
        patch.setattr(checked, "export_partly_float", lambda member, calibration, check, threshold, path: 0.5)
        predict.main(["--weights", weights_of(trained), "--data_root", str(synthetic_data), "--export", "tflite",
                      "tflite_int8", "onnx", "--calibration_images", "8", "--output", str(out)])  # fmt: skip
    return out, printed.getvalue(), errors.getvalue()


def valid_inputs(trained: Path, synthetic_data: Path) -> tuple:
    """The Keras model and the valid images resized to its input (float in [0, 1])."""
    model, size = predictor.load_model(Path(weights_of(trained)), None, None)
    paths = sorted((synthetic_data / "valid" / "images").rglob("*.*"))
    images = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in paths]
    return model, np.concatenate([resize_for_model(image[None], size).numpy() for image in images])


def test_int8_model_takes_uint8_pixels_and_the_printed_agreement_is_its_masks_iou(trained, synthetic_data, deployed):
    """The shared model has had 10 steps: a quarter of its pixels lie within 0.05 of the threshold, so its INT8 masks
    agree less than a trained model's (cli/test_class_training.py asserts 0.95 on the model that learned)."""
    out, printed, _ = deployed
    run = checked.tflite_interpreter(out / "model_int8.tflite").get_signature_runner()
    (image_details,) = run.get_input_details().values()
    (output_details,) = run.get_output_details().values()
    assert image_details["dtype"] == np.uint8 and output_details["dtype"] == np.uint8
    scale, zero_point = image_details["quantization"]
    assert scale == pytest.approx(1 / 255) and zero_point == 0
    images = checked.run_images(Path(weights_of(trained)), synthetic_data, training=False, count=checked.CHECK_IMAGES)
    model, _ = predictor.load_model(Path(weights_of(trained)), None, None)
    pixels = np.round(images / scale + zero_point).astype(np.uint8)
    out_scale, out_zero = output_details["quantization"]
    lite = np.stack([run(image=image[None])["probabilities"][0] for image in pixels])
    lite_mask, keras_mask = (lite.astype(np.float32) - out_zero) * out_scale > 0.5, model.predict(images) > 0.5
    iou = (lite_mask & keras_mask).sum() / (lite_mask | keras_mask).sum()
    assert keras_mask.any() and f"on {len(images)} valid images: IoU {iou:.4f}" in printed


def test_int8_file_is_at_most_0_6_of_the_float16_one(deployed):
    out, _, _ = deployed
    assert (out / "model_int8.tflite").stat().st_size <= 0.6 * (out / "model_float16.tflite").stat().st_size


def test_a_low_int8_agreement_is_a_warning(deployed):
    _, _, errors = deployed
    assert "warning: the INT8 model's masks agree with the Keras model's below 1.01" in errors


def test_onnx_model_agrees_with_keras(trained, synthetic_data, deployed):
    onnxruntime = pytest.importorskip("onnxruntime")
    out, _, _ = deployed
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    model, images = valid_inputs(trained, synthetic_data)
    assert np.abs(session.run(["probabilities"], {"image": images})[0] - model.predict(images)).max() < 1e-3


def test_tflite_models_run_with_litert_where_it_is_installed(deployed):
    pytest.importorskip("ai_edge_litert")
    out, _, _ = deployed
    assert type(checked.tflite_interpreter(out / "model_int8.tflite")).__module__.startswith("ai_edge_litert")


def test_onnx_without_tf2onnx_is_one_line_naming_the_pythons_that_have_it(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as on Python 3.9, where tf2onnx 1.17 does not install
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--weights", weights_of(trained), "--export", "onnx", "--output", str(tmp_path)])
    errors = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(errors) == 1 and "Python 3.10 to 3.13" in errors[0]
    assert not (tmp_path / "model.onnx").exists()


def test_single_model_exports_refuse_an_ensemble(trained, tmp_path, capsys):
    weights = weights_of(trained)
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--weights", weights, weights, "--export", "tflite_int8", "onnx", "--output", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--export tflite_int8 onnx holds one model: export an ensemble as savedmodel" in capsys.readouterr().err


def test_mask_agreement_is_the_iou_of_the_masks_or_the_mean_over_classes():
    first = np.zeros((1, 4, 4, 1), np.float32)
    first[0, :2, :2] = 0.9
    second = first.copy()
    second[0, :2, 2:] = 0.9
    assert checked.mask_agreement(first, second, 0.5) == pytest.approx(0.5)
    assert checked.mask_agreement(first * 0, second * 0, 0.5) == 1.0
    labels = np.eye(3, dtype=np.float32)[[[0, 1, 1, 2]]]  # 1 x 4 x 3: background, class 1 twice, class 2
    other = np.eye(3, dtype=np.float32)[[[0, 1, 2, 2]]]
    assert checked.mask_agreement(labels, other, 0.5) == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_truth_iou_scores_masks_against_true_masks_leaving_ignored_pixels_out():
    probabilities = np.zeros((1, 2, 4, 1), np.float32)
    probabilities[0, :, :2] = 0.9  # the left half
    truth = np.zeros((1, 2, 4, 1), np.float32)
    truth[0, :, 1:3] = 1  # the middle half
    assert checked.truth_iou(probabilities, truth, 0.5) == pytest.approx(2 / 6)
    labels = np.eye(3, dtype=np.float32)[[[[0, 1, 1, 2]]]]  # 1 x 1 x 4 x 3
    true_labels = np.array([[[[0], [1], [IGNORED], [1]]]], np.uint8)  # class 1: 1 of 2; class 2: 0 of 1
    assert checked.truth_iou(labels, true_labels, 0.5) == pytest.approx(np.mean([1 / 2, 0.0]))
