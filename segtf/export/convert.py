"""Exports that need only TensorFlow: a SavedModel of one model or an ensemble (uint8 images of any size in;
probabilities at that size and the post-processed mask out, or with several classes each class's probability and the
post-processed most probable class; by sliding windows for a patch run) and TFLite models of one (float32, float16
or full-integer)."""

from pathlib import Path
from typing import Callable, Optional, Sequence

from segtf.dataset.input_scaling import resize_for_model, to_model_input, to_size
from segtf.files import write_bytes
from segtf.inference.postprocessing import (
    class_graph_arguments,
    graph_arguments,
    postprocess_graph,
    postprocess_labels_graph,
)
from segtf.inference.predictor import Member
from segtf.inference.sliding_window import predict_scaled_graph
from segtf.modeling.outputs import squeeze_channel
from segtf.quiet import quiet_stderr

import tensorflow as tf


def member_graph(member: Member, images: tf.Tensor) -> tf.Tensor:
    """A member's N x H x W x 1 (or K) probabilities of uint8 images, as inference.member_probabilities predicts."""
    model, size, windows = member.model, member.size, member.windows

    channels = model.output_shape[-1]

    def by_windows(image: tf.Tensor) -> tf.Tensor:
        predict = lambda batch: model(to_model_input(batch), training=False)  # noqa: E731
        probabilities = predict_scaled_graph(predict, image, **windows, channels=channels)
        return probabilities[..., None] if channels == 1 else probabilities

    if windows:
        return tf.map_fn(by_windows, images, fn_output_signature=tf.float32)
    probabilities = model(resize_for_model(images, size), training=False)
    return to_size(probabilities, tf.shape(images)[1], tf.shape(images)[2])


def export_savedmodel(members: Sequence[Member], folder: Path, settings: dict) -> None:
    """A SavedModel that needs only TensorFlow: uint8 images of any size in; the mean of the members'
    probabilities at that size, and the mask post-processed by settings (uint8, 1 on the mask), out; with several
    classes, the mask holds the most probable class of each pixel, post-processed class by class."""
    names = members[0].class_names

    def mask_of(probabilities: tf.Tensor) -> tf.Tensor:
        if names:
            labels = tf.cast(tf.argmax(probabilities, -1), tf.int32)
            labels = postprocess_labels_graph(labels, *class_graph_arguments(settings, names))
            return tf.cast(labels, tf.uint8)[..., None]
        mask = postprocess_graph(squeeze_channel(probabilities), *graph_arguments(settings))
        return tf.cast(mask, tf.uint8)[..., None]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(images: tf.Tensor) -> dict:
        probabilities = tf.add_n([member_graph(m, images) for m in members]) / len(members)
        return {"probabilities": probabilities, "mask": tf.map_fn(mask_of, probabilities, fn_output_signature=tf.uint8)}

    module = tf.Module()
    module.weights = [w for m in members for w in m.model.weights]  # variables only: no Keras objects
    module.serve = serve
    tf.saved_model.save(module, str(folder), signatures={"serving_default": serve})
    print(
        f"SavedModel in {folder}: tf.saved_model.load(...).signatures['serving_default'](images=uint8 NHWC) "
        "gives probabilities and mask"
    )


def tflite_converter(
    model: tf.keras.Model, size: int, precision: str, representative_dataset: Optional[Callable] = None
) -> tf.lite.TFLiteConverter:
    """The converter of a TFLite model of one float image in [0, 1] of size x size in, its probabilities out; its
    weights in precision (float32, float16 or int8). int8 is full-integer: a uint8 image in and uint8 probabilities
    out, every operation in integers, calibrated on representative_dataset."""

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="image")])
    def infer(image: tf.Tensor) -> dict:
        return {"probabilities": tf.cast(model(image, training=False), tf.float32)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([infer.get_concrete_function()], model)
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.uint8
    return converter


def convert_tflite(
    model: tf.keras.Model, size: int, precision: str, representative_dataset: Optional[Callable] = None
) -> bytes:
    """The TFLite model of tflite_converter."""
    converter = tflite_converter(model, size, precision, representative_dataset)
    with quiet_stderr():  # the converter's statistics, printed by C++
        return converter.convert()


def export_tflite(model: tf.keras.Model, size: int, path: Path) -> None:
    """A float16 TFLite model: one float image in [0, 1] of size x size in, its probabilities out."""
    write_bytes(path, convert_tflite(model, size, "float16"))
    print(f"TFLite model in {path}: input [1, {size}, {size}, 3] float in [0, 1]")
