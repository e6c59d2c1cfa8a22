"""The model: a segmentation_models Unet, FPN or Linknet, or a decoder of our own (Unet++, DeepLabV3+) on a
segmentation_models encoder, with one float32 sigmoid output (or a float32 softmax over several classes), compiled with
a loss and its metrics."""

import contextlib
from pathlib import Path
from typing import Callable, Iterator, Optional

from segtf.dataset.classes import class_count_of
from segtf.errors import UserError
from segtf.modeling.decoders.deeplabv3plus import deeplabv3plus
from segtf.modeling.decoders.unetplusplus import unetplusplus
from segtf.modeling.encoders import check_encoder, encoder_features, sm
from segtf.modeling.losses import make_loss
from segtf.modeling.metrics import class_metrics, dataset_metrics
from segtf.modeling.optimizers import learning_rate_schedule, make_optimizer
from segtf.modeling.precision import precision_policy

import tensorflow as tf

SEGMENTATION_MODELS = {"unet": sm.Unet, "fpn": sm.FPN, "linknet": sm.Linknet}
OWN_DECODERS = {"unetplusplus": unetplusplus, "deeplabv3plus": deeplabv3plus}
ARCHITECTURES = (*SEGMENTATION_MODELS, *OWN_DECODERS)


@contextlib.contextmanager
def encoder_weights_read(backbone: str, weights: Optional[str]) -> Iterator[None]:
    """UserError for weights that cannot be downloaded or loaded into the backbone."""
    try:
        yield
    except Exception as error:  # a failed download raises a plain Exception, a wrong file ValueError or OSError
        if weights != "imagenet":
            raise UserError(f"--encoder_weights {weights} cannot be loaded into {backbone}: {error}") from error
        raise UserError(
            f"could not download the ImageNet weights of {backbone} ({type(error).__name__}; no internet?): "
            "train from scratch with --encoder_weights none, or give a local weights file with --encoder_weights PATH"
        ) from error


def build_network(arch: str, backbone: str, encoder_weights: str, channels: int = 1) -> tf.keras.Model:
    """arch (ARCHITECTURES: segmentation_models' or a decoder of our own) on the backbone, with channels linear
    outputs; 'imagenet' weights are downloaded, or read from a local file."""
    if arch not in ARCHITECTURES:
        raise UserError(f"arch {arch} is not one of {', '.join(ARCHITECTURES)}")
    check_encoder(backbone, encoder_weights)
    weights = None if encoder_weights == "none" else encoder_weights
    with encoder_weights_read(backbone, weights):
        if arch in SEGMENTATION_MODELS:
            return SEGMENTATION_MODELS[arch](
                backbone, classes=channels, activation="linear", encoder_weights=weights, input_shape=(None, None, 3)
            )
        inputs, features = encoder_features(backbone, weights)
    return tf.keras.Model(inputs, OWN_DECODERS[arch](features, channels))


def load_weights(model: tf.keras.Model, path: Path, flag: str, arch: str, backbone: str) -> None:
    """path's weights into model; UserError naming the flag and the file, saying whether the file cannot be read
    (truncated, or not weights) or holds another model's weights."""
    try:
        model.load_weights(str(path))
    except (OSError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise UserError(f"{flag} {path}: cannot be read as weights, truncated or not an .h5 file of train.py "
                        f"({first_line})") from error  # fmt: skip
    except ValueError as error:
        first_line = str(error).strip().splitlines()[0]
        raise UserError(f"{flag} {path}: the weights of another model than a {arch} on {backbone} ({first_line})") \
            from error  # fmt: skip


def set_bn_momentum(model: tf.keras.Model, momentum: float) -> None:
    """Set the moving-average momentum of every BatchNormalization layer, nested models included."""
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = momentum


def build_model(
    backbone: str = "efficientnetb4",
    encoder_weights: str = "imagenet",
    bn_momentum: float = 0.9,
    arch: str = "unet",
    classes: int = 1,
) -> tf.keras.Model:
    """The network with its sigmoid (one class) or softmax (several: a probability a class) in float32 in any case:
    the focal loss clips at 1 - 1e-7, which is 1.0 in float16, and log(1 - 1.0) is infinite."""
    network = build_network(arch, backbone, encoder_weights, classes)
    set_bn_momentum(network, bn_momentum)
    head = "sigmoid" if classes == 1 else "softmax"
    outputs = tf.keras.layers.Activation(head, dtype="float32", name="mask")(network.output)
    return tf.keras.Model(network.input, outputs, name=f"{arch}_{backbone}")


def create_model(
    backbone: str = "efficientnetb4",
    encoder_weights: str = "imagenet",
    optimizer: str = "adamw",
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    total_steps: int = 1,
    bn_momentum: float = 0.9,
    jit_compile: bool = False,
    precision: str = "float32",
    loss: Optional[Callable] = None,
    arch: str = "unet",
    ema: float = 0.0,
    class_names: Optional[list[str]] = None,
) -> tf.keras.Model:
    """build_model, compiled: the loss (default: Dice + focal, losses.py), dataset-level IoU and F1, the optimizer
    over total_steps; layers computing in precision (precision.PRECISIONS), float16 with a dynamic
    LossScaleOptimizer (the head stays float32); ema above 0, the optimizer keeps the moving average of the weights
    with that decay. class_names: several classes, a softmax over them, scored by scoring.class_metrics (the loss
    must be one for them)."""
    classes = class_count_of(class_names)
    with precision_policy(precision):
        model = build_model(backbone, encoder_weights, bn_momentum, arch, classes)
    step = make_optimizer(optimizer, learning_rate_schedule(lr_schedule, learning_rate, total_steps), weight_decay, ema)
    if precision == "float16":  # bfloat16 has float32's range: its gradients do not underflow
        step = tf.keras.mixed_precision.LossScaleOptimizer(step)
    model.compile(
        optimizer=step,
        loss=loss or make_loss("dice_focal", classes=classes),
        metrics=class_metrics(class_names) if class_names else dataset_metrics(),
        jit_compile=jit_compile,
    )
    step.build(model.trainable_variables)  # here, not in the first step: a step that makes variables is traced twice
    return model
