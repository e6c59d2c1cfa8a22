"""The one input scaling: uint8 pixels to the model's input in [0, 1], and back; and the resizing of whole images to
the model's input size and of its probabilities back. Training, validation, prediction, sliding windows and every
export call these, so that what a model is served is what it was trained on."""

import numpy as np
import tensorflow as tf


def to_model_input(pixels, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """uint8 images (a tensor or an array, any shape) as the model takes them: pixel / 255 in float32, then in
    dtype (float16 or bfloat16 for a mixed-precision model's batches)."""
    return tf.cast(tf.cast(pixels, tf.float32) / 255.0, dtype)


def to_pixels(model_input) -> np.ndarray:
    """The model's input back to uint8 pixels, for pictures."""
    scaled = np.asarray(model_input, np.float32) * 255
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def batch_dtype(precision: str) -> tf.DType:
    """The dtype of the input batches of a model trained in precision (precision.PRECISIONS; auto, as outside
    training: float32)."""
    return {"float16": tf.float16, "bfloat16": tf.bfloat16}.get(precision, tf.float32)


def resize_for_model(images: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 images of any size to the model's input at size x size (antialias: smooth downscaling)."""
    return tf.image.resize(to_model_input(images), (size, size), antialias=True)


def to_size(probabilities: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    return tf.image.resize(tf.cast(probabilities, tf.float32), tf.stack([height, width]))
