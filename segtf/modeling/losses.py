"""The training losses, by name (--loss): each on the model's float32 probabilities and masks in {0, 1}, computed in
float32 whatever the batches' dtype, so that mixed precision cannot overflow them.

segmentation_models' Dice, focal and cross-entropy losses where it has them; the Lovász hinge (Berman et al., 2018)
and the Tversky loss (Salehi et al., 2017), which it has not, here. With several classes (softmax probabilities and
label masks), Dice over the foreground classes and cross-entropy or focal over all, here too, since
segmentation_models' would count the ignored pixels.
"""

from typing import Callable

from segtf.dataset.classes import IGNORED
from segtf.modeling.encoders import sm

import tensorflow as tf

LOSSES = ("dice_focal", "dice_bce", "bce", "focal", "lovasz", "tversky")
LOSS_TITLES = {"dice_focal": "Dice + focal", "dice_bce": "Dice + cross-entropy", "bce": "cross-entropy",
               "focal": "focal", "lovasz": "Lovász hinge", "tversky": "Tversky"}  # fmt: skip
EPSILON = 1e-7  # probabilities are clipped to [EPSILON, 1 - EPSILON] where a logarithm or a logit is taken


def lovasz_grad(sorted_truth: tf.Tensor) -> tf.Tensor:
    """The gradient of the Lovász extension of the Jaccard loss at errors sorted in decreasing order."""
    total = tf.reduce_sum(sorted_truth)
    intersection = total - tf.cumsum(sorted_truth)
    union = total + tf.cumsum(1.0 - sorted_truth)
    jaccard = 1.0 - intersection / union
    return tf.concat([jaccard[:1], jaccard[1:] - jaccard[:-1]], 0)


def lovasz_hinge(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """The Lovász hinge of each image's pixels, on the logits of the probabilities, averaged over the images."""
    logits = tf.math.log(y_pred / (1.0 - y_pred))

    def one_image(pair: tuple) -> tf.Tensor:
        truth, logit = tf.reshape(pair[0], [-1]), tf.reshape(pair[1], [-1])
        errors = 1.0 - logit * (2.0 * truth - 1.0)
        order = tf.argsort(errors, direction="DESCENDING")
        return tf.tensordot(tf.nn.relu(tf.gather(errors, order)), lovasz_grad(tf.gather(truth, order)), 1)

    return tf.reduce_mean(tf.map_fn(one_image, (y_true, logits), fn_output_signature=tf.float32))


def tversky(alpha: float, beta: float) -> Callable:
    """1 - TP / (TP + alpha FP + beta FN) over the batch's pixels: beta above alpha weighs misses more than false
    alarms, for thin structures where recall matters; alpha = beta = 0.5 is the Dice loss."""

    def loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        tp = tf.reduce_sum(y_true * y_pred)
        fp, fn = tf.reduce_sum((1.0 - y_true) * y_pred), tf.reduce_sum(y_true * (1.0 - y_pred))
        return 1.0 - (tp + EPSILON) / (tp + alpha * fp + beta * fn + EPSILON)

    return loss


def class_loss(terms: tuple[str, ...], classes: int) -> Callable:
    """The sum of terms ("dice", "ce", "focal") on softmax probabilities and label masks, over the pixels not
    ignored: batch Dice averaged over the foreground classes; cross-entropy and focal (gamma 2, alpha 0.25, as
    segmentation_models') averaged over the pixels."""

    def loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        labels = tf.cast(y_true[..., 0], tf.int32)
        counted = tf.cast(labels != IGNORED, tf.float32)[..., None]
        truth = tf.one_hot(tf.where(labels == IGNORED, 0, labels), classes) * counted
        pixels = tf.maximum(tf.reduce_sum(counted), 1.0)
        total = 0.0
        if "dice" in terms:
            predicted = y_pred * counted
            intersection = tf.reduce_sum(truth * predicted, [0, 1, 2])
            sizes = tf.reduce_sum(truth, [0, 1, 2]) + tf.reduce_sum(predicted, [0, 1, 2])
            total += 1.0 - tf.reduce_mean(((2.0 * intersection + EPSILON) / (sizes + EPSILON))[1:])
        if "ce" in terms:
            total += -tf.reduce_sum(truth * tf.math.log(y_pred)) / pixels
        if "focal" in terms:
            total += -0.25 * tf.reduce_sum(truth * (1.0 - y_pred) ** 2 * tf.math.log(y_pred)) / pixels
        return total

    return loss


CLASS_LOSSES = {"dice_focal": ("dice", "focal"), "dice_bce": ("dice", "ce"), "bce": ("ce",), "focal": ("focal",)}


def in_float32(loss: Callable, name: str) -> Callable:
    """loss on float32 masks and probabilities clipped to [EPSILON, 1 - EPSILON]."""

    def float32_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), EPSILON, 1.0 - EPSILON)
        return loss(tf.cast(y_true, tf.float32), y_pred)

    float32_loss.__name__ = name
    return float32_loss


def make_loss(name: str, tversky_alpha: float = 0.3, tversky_beta: float = 0.7, classes: int = 1) -> Callable:
    """The loss called name (one of LOSSES); with several classes, of CLASS_LOSSES (bce: the cross-entropy)."""
    if classes > 1:
        if name not in CLASS_LOSSES:
            raise ValueError(f"loss {name!r} is for one class; with several: {', '.join(CLASS_LOSSES)}")
        return in_float32(class_loss(CLASS_LOSSES[name], classes), name)
    losses = {
        "dice_focal": lambda: sm.losses.DiceLoss() + sm.losses.BinaryFocalLoss(),
        "dice_bce": lambda: sm.losses.DiceLoss() + sm.losses.BinaryCELoss(),
        "bce": sm.losses.BinaryCELoss,
        "focal": sm.losses.BinaryFocalLoss,
        "lovasz": lambda: lovasz_hinge,
        "tversky": lambda: tversky(tversky_alpha, tversky_beta),
    }
    if name not in losses:
        raise ValueError(f"loss {name!r}: expected one of {', '.join(LOSSES)}")
    return in_float32(losses[name](), name)
