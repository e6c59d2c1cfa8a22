"""selective.py: the layers quantization harms most kept in float, more at a time, until the masks agree."""

from segtf.export import selective
from segtf.export.checked import tflite_interpreter, tflite_outputs
from segtf.export.convert import tflite_converter

import numpy as np
import tensorflow as tf


def small_model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Conv2D(1, 1, activation="sigmoid")(x))


def test_layers_are_kept_in_float_one_then_four_at_a_time_until_the_agreement_holds_up_to_a_share(monkeypatch):
    model, images = small_model(), np.random.default_rng(0).random((4, 16, 16, 3), np.float32)
    dataset = lambda: ([image[None]] for image in images)  # noqa: E731
    calls = []

    def agreement(content: bytes) -> float:  # holds from the second model tried on
        outputs = tflite_outputs(tflite_interpreter(content), images)
        calls.append(np.abs(outputs - model.predict(images, verbose=0)).max())
        return 0.9 if len(calls) < 2 else 0.99

    monkeypatch.setattr(selective, "MAX_FLOAT_SHARE", 1.0)
    converter = tflite_converter(model, 16, "int8", dataset)
    content, kept, score = selective.keep_in_float(converter, dataset, agreement, 0.95)
    assert score == 0.99 and len(kept) == 3 and len(calls) == 2 and max(calls) < 0.1  # 1 layer, then 3 of 4
    assert tflite_interpreter(content).get_input_details()[0]["dtype"] == np.float32  # as the float16 model's
    monkeypatch.setattr(selective, "MAX_FLOAT_SHARE", 0.25)
    calls.clear()
    _, kept, score = selective.keep_in_float(tflite_converter(model, 16, "int8", dataset), dataset, agreement, 0.95)
    assert len(kept) == 1 and len(calls) == 1 and score == 0.9  # a quarter of 4 layers: one tried, the best kept
