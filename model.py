"""The model: a segmentation_models Unet with one sigmoid output, its loss, metrics, optimizer and schedule."""

from pathlib import Path
from typing import Optional

import keras2  # noqa: F401

import segmentation_models as sm
import tensorflow as tf

from optimizers import RectifiedAdam
from utils import UserError, optimizer_settings


def learning_rate_schedule(name: str, learning_rate: float, total_steps: int):
    """cosine: linear warm-up over the first 5% of total_steps, then a cosine decay to 0 at the last step.
    constant and plateau: a fixed rate (ReduceLROnPlateau in train.py lowers the plateau one)."""
    if name != "cosine":
        return learning_rate
    warmup = max(1, round(0.05 * total_steps))
    return tf.keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), warmup_target=learning_rate, warmup_steps=warmup
    )


def make_optimizer(name: str, learning_rate, weight_decay: float) -> tf.keras.optimizers.Optimizer:
    """The one place that builds the optimizer. Weight decay is decoupled from the gradient in each: every step
    shrinks every weight by learning_rate * weight_decay."""
    if name == "radam":  # the project's own: tensorflow-addons' does not install on Python 3.12 and later
        return RectifiedAdam(learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return tf.keras.optimizers.SGD(learning_rate, momentum=0.99, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return tf.keras.optimizers.Adam(learning_rate, weight_decay=weight_decay)
    if name == "adamw":
        return tf.keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    raise UserError(f"--optimizer {name}: expected radam, adam, adamw or sgd")


class BinaryF1(tf.keras.metrics.BinaryIoU):
    """F1 (Dice) of the foreground from BinaryIoU's pixel counts, summed over every batch of an epoch and
    every device: the same whatever the batch size."""

    def __init__(self, threshold: float = 0.5, name: str = "f1", dtype=None):
        super().__init__(target_class_ids=[1], threshold=threshold, name=name, dtype=dtype)

    def result(self) -> tf.Tensor:
        true_positives, false_positives, false_negatives = self.total_cm[1, 1], self.total_cm[0, 1], self.total_cm[1, 0]
        return tf.math.divide_no_nan(2 * true_positives, 2 * true_positives + false_positives + false_negatives)


def dataset_metrics() -> list[tf.keras.metrics.Metric]:
    """IoU and F1 of the foreground at 0.5, from the pixels of the whole epoch (not a mean over batches)."""
    return [tf.keras.metrics.BinaryIoU(target_class_ids=[1], threshold=0.5, name="iou"), BinaryF1(0.5)]


def check_encoder(backbone: str, encoder_weights: str) -> None:
    """UserError for a backbone segmentation_models does not have, or weights that are not a file."""
    if backbone not in sm.get_available_backbone_names():
        raise UserError(
            f"--backbone {backbone} is not one of segmentation_models': {', '.join(sm.get_available_backbone_names())}"
        )
    if encoder_weights not in ("none", "imagenet") and not Path(encoder_weights).is_file():
        raise UserError(f"--encoder_weights {encoder_weights}: no such file")


def build_unet(backbone: str, encoder_weights: str) -> tf.keras.Model:
    """sm.Unet with one class; 'imagenet' weights are downloaded, or read from a local file."""
    check_encoder(backbone, encoder_weights)
    weights = None if encoder_weights == "none" else encoder_weights
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
    optimizer: str = "adamw",
    learning_rate: Optional[float] = None,
    weight_decay: Optional[float] = None,
    lr_schedule: str = "constant",
    total_steps: int = 1,
    bn_momentum: float = 0.9,
    jit_compile: bool = False,
) -> tf.keras.Model:
    """build_model, compiled: Dice + focal loss, dataset-level IoU and F1, the optimizer over total_steps,
    wrapped in a dynamic LossScaleOptimizer under the mixed_float16 policy. A learning rate or weight decay
    left None is the optimizer's default (utils.optimizer_settings)."""
    learning_rate, weight_decay = optimizer_settings(optimizer, learning_rate, weight_decay)
    model = build_model(backbone, encoder_weights, bn_momentum)
    schedule = learning_rate_schedule(lr_schedule, learning_rate, total_steps)
    step = make_optimizer(optimizer, schedule, weight_decay)
    if tf.keras.mixed_precision.global_policy().name == "mixed_float16":
        step = tf.keras.mixed_precision.LossScaleOptimizer(step)
    model.compile(
        optimizer=step,
        loss=sm.losses.DiceLoss() + sm.losses.BinaryFocalLoss(),
        metrics=dataset_metrics(),
        jit_compile=jit_compile,
    )
    return model
