"""What several test files share besides fixtures (those are conftest.py's): the small training run, the processes
that tests start, the 3-class data and scores, the shared model's weights, drawn masks. Tests import it by name
(pyproject.toml's pythonpath holds tests/); the processes that tests start find it through PYTHONPATH."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from segtf.dataset.classes import IGNORED

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# For the scripts that tests run in processes of their own (tests/kill_at.py, python -c ...): the repository, for the
# segtf package, and tests/, for this module. pyproject.toml's pythonpath reaches pytest's own process only.
PYTHONPATH = os.pathsep.join([str(REPO), str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])])

STEPS = 5  # SMALL's steps an epoch
SMALL = ["--backbone", "resnet18", "--image_size", "64", "--batch_size", "8", "--encoder_weights", "none",
         "--mixed_precision", "false", "--device", "cpu", "--steps_per_epoch", str(STEPS)]  # fmt: skip


def run_training(data_root: Path, work_dir: Path, *flags: str) -> None:
    """train.py with a small model on small images, on the CPU."""
    from segtf.cli import train

    train.main(["--data_root", str(data_root), "--work_dir", str(work_dir), *SMALL, *flags])


def train_predict_and_export(arch: str, data_root: Path, tmp_path: Path, onnx: bool) -> None:
    """A 2-epoch run of arch whose loss falls, its prediction by windows at an image's size, its SavedModel within 1e-4
    of predict.py and, with onnx, its ONNX model within 1e-3 of Keras (where onnxruntime is installed)."""
    from segtf.cli import predict
    from segtf.inference.predictor import ensemble_probabilities, load_member, read_rgb

    import pandas as pd
    import tensorflow as tf

    onnxruntime = pytest.importorskip("onnxruntime") if onnx else None
    run_training(data_root, tmp_path / "work", "--arch", arch, "--epochs", "2")
    losses = pd.read_csv(tmp_path / "work" / "tensorflow" / "logs" / "history.csv").loss
    weights = tmp_path / "work" / "tensorflow" / "weights" / "best-weight_resnet18.h5"
    image = sorted((data_root / "png" / "valid" / "images").rglob("*.png"))[0]
    out = tmp_path / "out"
    predict.main(["--weights", str(weights), "--input", str(image), "--patch_size", "64", "--export", "savedmodel",
                  *(["onnx"] if onnx else []), "--output", str(out)])  # fmt: skip
    photo = read_rgb(image)
    assert losses.iloc[-1] < losses.iloc[0] and read_rgb(out / "masks" / image.name).shape == photo.shape
    member = load_member(weights, {"patch_size": 64, "overlap": 0.5, "batch_size": 8})
    assert member.model.name == f"{arch}_resnet18" and member.windows
    _, _, expected = next(ensemble_probabilities([member], [image], 8, None, {}))
    serve = tf.saved_model.load(str(out / "savedmodel")).signatures["serving_default"]
    served = serve(images=tf.constant(photo[None]))["probabilities"].numpy()[0, ..., 0]
    assert np.abs(served - expected).max() < 1e-4  # by windows, at the image's size
    if onnx:
        tiles = np.random.default_rng(0).random((2, 64, 64, 3), np.float32)
        session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        assert np.abs(session.run(["probabilities"], {"image": tiles})[0] - member.model.predict(tiles)).max() < 1e-3


def run_to(point: str, epoch: int, data_root: Path, work_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    """train.py with a small model, in a process of its own that tests/kill_at.py kills or signals at point."""
    command = [sys.executable, str(REPO / "tests" / "kill_at.py"), point, str(epoch), "--data_root", str(data_root),
               "--work_dir", str(work_dir), *SMALL, *flags]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def assert_whole_run(work_dir: Path, epochs: int) -> None:
    """One history row for each epoch, every weights file loads, no backup or pending file left."""
    from segtf.modeling import network
    from segtf.training import checkpoints

    import pandas as pd

    root = work_dir / "tensorflow"
    assert list(pd.read_csv(root / "logs" / "history.csv").epoch) == list(range(epochs))
    weights = sorted(root.rglob("*.h5"))
    assert [p.name for p in weights] == ["best-weight_resnet18.h5", "last-weight_resnet18.h5"]
    net = network.create_model("resnet18", "none")
    for path in weights:
        net.load_weights(str(path))
    assert checkpoints.saved_position(root / "backup") is None and not list((root / "pending").glob("*"))


def sha256_of_tree(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def prepare(data_root: Path, *flags: str) -> None:
    """data_preparation.py with one worker."""
    from segtf.cli.prepare import main as prepare_main

    prepare_main(["--data_root", str(data_root), "--workers", "1", *flags])


def numpy_class_iou(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Each class's IoU from numpy's confusion matrix of the pixels not ignored (1 for a class never seen)."""
    counted = labels != IGNORED
    matrix = np.zeros((classes, classes))
    np.add.at(matrix, (labels[counted], predicted[counted]), 1)
    tp = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), 1.0)


def random_labels_and_probabilities(classes: int, count: int = 12, side: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, (count, side, side, 1)).astype(np.float32)
    labels[rng.random(labels.shape) < 0.1] = IGNORED
    logits = rng.normal(size=(count, side, side, classes)) + 2 * np.eye(classes)[labels[..., 0].astype(int) % classes]
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return labels, probabilities.astype(np.float32)


def class_scores_under(strategy, batch_sizes: tuple = (2, 6)) -> dict:
    """{batch size: the class metrics' results}, and numpy's IoU of each class, for a model that returns its input
    (probabilities of 3 classes) evaluated under strategy: the devices and workers each score a part of every batch.
    Other processes (2 logical devices, a cluster) import this, and modeling/test_metrics.py runs it in its own."""
    from segtf.modeling.losses import make_loss
    from segtf.modeling.metrics import class_metrics

    import tensorflow as tf

    labels, probabilities = random_labels_and_probabilities(3)
    with strategy.scope():
        inputs = tf.keras.Input((None, None, 3))
        identity = tf.keras.Model(inputs, tf.keras.layers.Activation("linear")(inputs))
        identity.compile(loss=make_loss("dice_focal", classes=3), metrics=class_metrics(["background", "a", "b"]))
    found = {}
    for batch_size in batch_sizes:
        pairs = tf.data.Dataset.from_tensor_slices((probabilities, labels)).batch(batch_size)
        found[batch_size] = identity.evaluate(pairs, verbose=0, return_dict=True)
    found["numpy"] = numpy_class_iou(labels[..., 0].astype(int), probabilities.argmax(-1), 3).tolist()
    return found


def assert_class_scores(found: dict) -> None:
    """Each batch size's per-class IoU is numpy's, and iou the foreground classes' mean."""
    expected = found.pop("numpy")
    for scores in found.values():
        assert [scores[f"iou_{n}"] for n in ("background", "a", "b")] == pytest.approx(expected, abs=1e-5)
        assert scores["iou"] == pytest.approx(np.mean(expected[1:]), abs=1e-5)


def weights_of(trained: Path) -> str:
    """The best weights of the shared run (conftest.py's trained)."""
    return str(trained / "weights" / "best-weight_resnet18.h5")


def keras_probabilities(trained: Path, image: np.ndarray) -> np.ndarray:
    """The probabilities of the Keras model of a run's best weights for one image, at the image's size."""
    from segtf.dataset.input_scaling import resize_for_model, to_size
    from segtf.inference.predictor import load_model

    model, size = load_model(Path(weights_of(trained)), None, None)
    probabilities = model(resize_for_model(image[None], size), training=False)
    return to_size(probabilities, image.shape[0], image.shape[1]).numpy()[0, ..., 0]


NAIL_CLASSES = ["background", "plate", "lunula"]


def disc(mask: np.ndarray, centre: tuple, radius: int) -> np.ndarray:
    return cv2.circle(mask.astype(np.uint8), centre, radius, 1, -1).astype(bool)
