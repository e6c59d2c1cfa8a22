"""Exports that need only TensorFlow: a SavedModel (uint8 images of any size in, probabilities at that size out, by
sliding windows for a patch run) and a float16 TFLite model."""

from pathlib import Path
from typing import Optional

import keras2  # noqa: F401

import tensorflow as tf

from input_scaling import resize_for_model, to_model_input, to_size
from sliding_window import predict_scaled_graph


def export_savedmodel(model: tf.keras.Model, size: int, folder: Path, windows: Optional[dict] = None) -> None:
    """A SavedModel that needs only TensorFlow: uint8 images of any size in, probabilities at that size out;
    by sliding windows as predict.py does when windows gives patch_size, scale, overlap and batch_size."""

    def by_windows(image: tf.Tensor) -> tf.Tensor:
        predict = lambda batch: model(to_model_input(batch), training=False)  # noqa: E731
        return predict_scaled_graph(predict, image, **windows)[..., None]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(images: tf.Tensor) -> dict:
        if windows:
            return {"probabilities": tf.map_fn(by_windows, images, fn_output_signature=tf.float32)}
        probabilities = model(resize_for_model(images, size), training=False)
        return {"probabilities": to_size(probabilities, tf.shape(images)[1], tf.shape(images)[2])}

    module = tf.Module()
    module.weights = list(model.weights)  # the variables only: no Keras or segmentation_models objects
    module.serve = serve
    tf.saved_model.save(module, str(folder), signatures={"serving_default": serve})
    print(f"SavedModel in {folder}: tf.saved_model.load(...).signatures['serving_default'](images=uint8 NHWC)")


def export_tflite(model: tf.keras.Model, size: int, path: Path) -> None:
    """A float16 TFLite model: one float image in [0, 1] of size x size in, its probabilities out."""

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="image")])
    def infer(image: tf.Tensor) -> dict:
        return {"probabilities": tf.cast(model(image, training=False), tf.float32)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([infer.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    path.write_bytes(converter.convert())
    print(f"TFLite model in {path}: input [1, {size}, {size}, 3] float in [0, 1]")
