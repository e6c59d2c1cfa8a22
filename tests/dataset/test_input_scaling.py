"""One input scaling: training and validation batches, predict.py, sliding windows and every export give a model the
same input for the same image."""

from pathlib import Path

from segtf.cli import prepare
from segtf.dataset import pipeline
from segtf.dataset.input_scaling import to_model_input, to_pixels
from segtf.export import checked, convert
from segtf.inference import predictor
from segtf.inference.postprocessing import NO_POSTPROCESSING
from segtf.inference.predictor import Member
from segtf.inference.sliding_window import predict_scaled, window_predictor

import cv2
import numpy as np
import pytest
import tensorflow as tf

SIZE = 64


def channel_mean() -> tf.keras.Model:
    """A model whose output is the mean of its input's channels: it shows what input it was given."""
    inputs = tf.keras.Input((None, None, 3))
    mean = tf.keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=tf.keras.initializers.Constant(1 / 3))
    return tf.keras.Model(inputs, mean(inputs))


@pytest.fixture(scope="module")
def one_image(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """(DATA, the RGB image): a prepared set of one random SIZE x SIZE image, in train and valid."""
    data = tmp_path_factory.mktemp("scaling")
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    for split in ("train", "valid"):
        for folder, pixels in (("images", image[..., ::-1]), ("masks", (image[..., 0] > 127).astype(np.uint8) * 255)):
            (data / split / folder).mkdir(parents=True)
            cv2.imwrite(str(data / split / folder / "one.png"), pixels)
    prepare.main(["--data_root", str(data), "--workers", "1"])
    return data, image


def served(folder: Path, image: np.ndarray) -> np.ndarray:
    serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
    return serve(images=tf.constant(image[None]))["probabilities"].numpy()[0, ..., 0]


def test_every_path_gives_the_model_the_same_input(one_image, tmp_path):
    data, image = one_image
    probe = channel_mean()
    expected = probe(to_model_input(image[None])).numpy()[0, ..., 0]
    assert expected.max() > 0.5 and np.abs(expected - image.mean(-1) / 255).max() < 1e-6  # [0, 1], not [-1, 1]

    valid, _ = pipeline.build_dataset([data / "csv_file" / "valid.csv"], SIZE, 1, training=False)
    train, _ = pipeline.build_dataset([data / "csv_file" / "train.csv"], SIZE, 1, training=True, augment="none")
    _, _, by_predict = next(predictor.resized_probabilities(probe, [data / "png" / "valid" / "images" / "one.png"],
                                                          SIZE, 1, None, {}))  # fmt: skip
    convert.export_savedmodel([Member(probe, SIZE, None)], tmp_path / "whole", NO_POSTPROCESSING)
    windows = {"patch_size": SIZE, "scale": 1.0, "overlap": 0.5, "batch_size": 1}
    convert.export_savedmodel([Member(probe, SIZE, windows)], tmp_path / "windows", NO_POSTPROCESSING)
    convert.export_tflite(probe, SIZE, tmp_path / "model.tflite")
    lite = checked.tflite_interpreter(tmp_path / "model.tflite").get_signature_runner()
    found = {
        "validation": probe(next(iter(valid))[0]).numpy()[0, ..., 0],
        "training": probe(next(iter(train))[0]).numpy()[0, ..., 0],
        "predict.py": by_predict,
        "sliding windows": predict_scaled(window_predictor(probe), image, 1.0, SIZE),
        "SavedModel": served(tmp_path / "whole", image),
        "SavedModel by windows": served(tmp_path / "windows", image),
        "TFLite (float [0, 1] in)": lite(image=to_model_input(image[None]))["probabilities"][0, ..., 0],
    }
    for name, probabilities in found.items():
        tolerance = 2e-3 if "TFLite" in name else 1e-6  # its weights are float16
        assert np.abs(probabilities - expected).max() < tolerance, name


def test_pixels_come_back_from_the_model_input():
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    assert np.array_equal(to_pixels(to_model_input(pixels)), pixels)
    assert np.array_equal(to_pixels(to_model_input(pixels, tf.float16)), pixels)
