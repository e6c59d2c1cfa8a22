"""A 3-class model, trained briefly, and every check of predicting, post-processing and exporting it; in a file of its
own, among the suite's longest, so that pytest-xdist starts it first. That such a model learns the generated set (a
mean foreground IoU of 0.8) and that its INT8 export keeps what it learned is a quality claim:
benchmarks/class_learning.py measures it over seeds (docs/experiments.md)."""

import json
from pathlib import Path

from segtf.cli import predict
from segtf.dataset.input_scaling import resize_for_model, to_pixels
from segtf.export import checked
from segtf.inference.postprocessing import postprocess_labels
from segtf.inference.predictor import ensemble_probabilities, load_member, read_rgb

import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import numpy_class_iou, prepare, run_training
from PIL import Image


def test_train_py_trains_several_classes_and_predict_py_and_exports_agree(tmp_path, capsys):
    """A short run on the generated 3-class set logs each class's IoU; the one model then serves every check of
    predicting, post-processing and exporting, and of the flags that refuse several classes."""
    try:
        import onnxruntime
    except ImportError:  # Python 3.9, which has no tf2onnx either
        onnxruntime = None
    onnx = ["onnx"] if onnxruntime else []
    data, names = tmp_path / "data", ["background", "class_1", "class_2"]
    prepare(data, "--synthetic", "24", "--classes", "3")
    run_training(data, tmp_path / "work", "--epochs", "1", "--seed", "1")
    history = pd.read_csv(tmp_path / "work" / "tensorflow" / "logs" / "history.csv")
    assert {"val_iou", "val_f1", "val_iou_background", "val_iou_class_1", "val_iou_class_2"} <= set(history.columns)
    config = json.loads((tmp_path / "work" / "tensorflow" / "run_config.json").read_text())["args"]
    assert config["classes"] == 3 and config["class_names"] == names
    weights = tmp_path / "work" / "tensorflow" / "weights" / "best-weight_resnet18.h5"
    one_class = tmp_path / "one_class.json"
    one_class.write_text(json.dumps({"settings": {"threshold": 0.4, "min_size": 0.01}}))
    attempts = [
        lambda: run_training(data, tmp_path / "w2", "--classes", "2"),
        lambda: run_training(data, tmp_path / "w3", "--loss", "lovasz"),
        lambda: predict.main(
            ["--weights", str(weights), "--threshold", "0.3", "--input", str(data / "png"), "--output", str(tmp_path)]
        ),  # fmt: skip
        lambda: predict.main(
            [
                "--weights",
                str(weights),
                "--postprocessing",
                str(one_class),
                "--input",
                str(data / "png"),
                "--output",
                str(tmp_path),
            ]
        ),  # fmt: skip
    ]
    capsys.readouterr()
    for attempt in attempts:
        with pytest.raises(SystemExit) as exit_info:
            attempt()
        assert exit_info.value.code == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and "was prepared for 3" in errors[0] and "--loss lovasz is for one class" in errors[1]
    assert "--threshold is for one class; these models have 3" in errors[2]
    assert f"{one_class}: chosen for one class, not for these models" in errors[3]

    # class_1's components all smaller than half the image, so all removed; class_2 kept only where largest
    settings = {"classes": {"class_1": {"min_size": 0.5}, "class_2": {"largest": True}}}
    (tmp_path / "classes.json").write_text(json.dumps({"settings": settings}))
    out = tmp_path / "out"
    predict.main(["--weights", str(weights), "--data_root", str(data), "--split", "valid", "--export", "savedmodel",
                  "tflite", "tflite_int8", *onnx, "--calibration_images", "8", "--postprocessing",
                  str(tmp_path / "classes.json"), "--output", str(out)])  # fmt: skip
    table = pd.read_csv(out / "metrics.csv")
    valid = pd.read_csv(data / "csv_file" / "valid.csv")
    assert len(table) == 3 * len(valid) and list(table["class"][:3]) == names
    for row in valid.itertuples():
        predicted = np.array(Image.open(out / "masks" / Path(row.image).relative_to("png")))  # a palette PNG's indices
        true = cv2.imread(str(data / row.mask), cv2.IMREAD_UNCHANGED)
        assert predicted.shape == (row.height, row.width) and set(np.unique(predicted)) <= {0, 2}
        expected = numpy_class_iou(true, predicted, 3)
        found = table[table.image == Path(row.image).relative_to("png").as_posix()].iou
        assert list(found) == pytest.approx(list(expected), abs=1e-6)
    image = data / valid.image[0]
    member = load_member(weights, {})
    _, photo, expected = next(ensemble_probabilities([member], [image], 8, None, {}))
    serve = tf.saved_model.load(str(out / "savedmodel")).signatures["serving_default"]
    served = serve(images=tf.constant(photo[None]))
    assert np.abs(served["probabilities"].numpy()[0] - expected).max() < 1e-4
    written = np.array(Image.open(out / "masks" / Path(valid.image[0]).relative_to("png")))
    assert np.array_equal(served["mask"].numpy()[0, ..., 0], written)
    labels = expected.argmax(-1)
    assert (labels == 1).any() and np.array_equal(postprocess_labels(labels, settings, names), written)
    interpreter = checked.tflite_interpreter(out / "model_float16.tflite")
    resized = resize_for_model(photo[None], member.size).numpy()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], resized)
    interpreter.invoke()
    lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert lite.shape == (1, member.size, member.size, 3)
    assert np.abs(lite - member.model.predict(resized, verbose=0)).max() < 2e-2
    # INT8 and ONNX hold the 3 classes too: uint8 probabilities of each class from uint8 pixels; ONNX within 1e-3
    images = np.concatenate([resize_for_model(read_rgb(data / path)[None], member.size) for path in valid.image])
    keras = member.model.predict(images, verbose=0)
    run = checked.tflite_interpreter(out / "model_int8.tflite").get_signature_runner()
    int8 = np.stack([run(image=to_pixels(image[None]))["probabilities"][0] for image in images])
    assert int8.dtype == np.uint8 and int8.shape == keras.shape
    if not onnx:
        return
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(["probabilities"], {"image": images})[0] - keras).max() < 1e-3
