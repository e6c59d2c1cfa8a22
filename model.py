"""The model: a segmentation_models Unet with one sigmoid output, its loss, metrics and optimizer."""

import os
import warnings
from pathlib import Path

os.environ.setdefault("SM_FRAMEWORK", "tf.keras")  # segmentation_models reads this at import

import segmentation_models as sm  # noqa: E402
import tensorflow as tf  # noqa: E402

from utils import UserError  # noqa: E402


def rectified_adam(learning_rate: float, weight_decay: float = 0.0) -> tf.keras.optimizers.Optimizer:
    """The only use of tensorflow_addons, which does not import on TensorFlow 2.16 and later:
    a move to a newer TensorFlow replaces this function and nothing else. Its weight decay is
    decoupled from the gradient: each step shrinks every weight by learning_rate * weight_decay."""
    with warnings.catch_warnings():  # its end-of-life notice; the README says why it is still used
        warnings.simplefilter("ignore", UserWarning)
        import tensorflow_addons as tfa

    return tfa.optimizers.RectifiedAdam(learning_rate, weight_decay=weight_decay)


def build_unet(backbone: str, encoder_weights: str) -> tf.keras.Model:
    """sm.Unet with one class; 'imagenet' weights are downloaded, or read from a local file."""
    if backbone not in sm.get_available_backbone_names():
        raise UserError(
            f"--backbone {backbone} is not one of segmentation_models': {', '.join(sm.get_available_backbone_names())}"
        )
    weights = None if encoder_weights == "none" else encoder_weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise UserError(f"--encoder_weights {weights}: no such file")
    try:
        return sm.Unet(backbone, classes=1, activation="linear", encoder_weights=weights, input_shape=(None, None, 3))
    except Exception as error:  # a failed download raises a plain Exception, a wrong file ValueError or OSError
        if weights != "imagenet":
            raise UserError(f"--encoder_weights {weights} cannot be loaded into {backbone}: {error}") from error
        raise UserError(
            f"could not download the ImageNet weights of {backbone} ({type(error).__name__}; no internet?): "
            "train from scratch with --encoder_weights none, or give a local weights file with --encoder_weights PATH"
        ) from error


def set_bn_momentum(model: tf.keras.Model, momentum: float) -> None:
    """Set the moving-average momentum of every BatchNormalization layer, nested models included."""
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = momentum


def build_model(backbone: str = "efficientnetb4", encoder_weights: str = "imagenet", bn_momentum: float = 0.9):
    """The Unet with its sigmoid in float32 in any case: the focal loss clips at 1 - 1e-7, which is
    1.0 in float16, and log(1 - 1.0) is infinite."""
    unet = build_unet(backbone, encoder_weights)
    set_bn_momentum(unet, bn_momentum)
    outputs = tf.keras.layers.Activation("sigmoid", dtype="float32", name="mask")(unet.output)
    return tf.keras.Model(unet.input, outputs, name=f"unet_{backbone}")


def create_model(
    backbone: str = "efficientnetb4",
    encoder_weights: str = "imagenet",
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    bn_momentum: float = 0.9,
    jit_compile: bool = False,
) -> tf.keras.Model:
    """build_model, compiled: Dice + focal loss, IoU and F1 at 0.5, RectifiedAdam, wrapped in a
    dynamic LossScaleOptimizer under the mixed_float16 policy."""
    model = build_model(backbone, encoder_weights, bn_momentum)
    optimizer = rectified_adam(learning_rate, weight_decay)
    if tf.keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=sm.losses.DiceLoss() + sm.losses.BinaryFocalLoss(),
        metrics=[sm.metrics.IOUScore(threshold=0.5), sm.metrics.FScore(threshold=0.5)],
        jit_compile=jit_compile,
    )
    return model
