"""losses.py: each --loss at its minimum on a perfect prediction, equal to a NumPy reference on random masks, finite
on float16 input, and trainable."""

from segtf.modeling.losses import EPSILON, LOSSES, make_loss
from segtf.modeling.network import create_model

import numpy as np
import pytest
import tensorflow as tf

RNG = np.random.default_rng(3)


def reference_bce(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def reference_focal(y: np.ndarray, p: np.ndarray, alpha: float = 0.25, gamma: float = 2.0) -> float:
    """segmentation_models' binary focal loss."""
    ones = -y * alpha * (1 - p) ** gamma * np.log(p)
    zeros = -(1 - y) * (1 - alpha) * p**gamma * np.log(1 - p)
    return float(np.mean(ones + zeros))


def reference_dice(y: np.ndarray, p: np.ndarray, smooth: float = 1e-5) -> float:
    """segmentation_models' Dice loss: the F1 of the whole batch's soft counts."""
    tp, fp, fn = (y * p).sum(), ((1 - y) * p).sum(), (y * (1 - p)).sum()
    return float(1 - (2 * tp + smooth) / (2 * tp + fp + fn + smooth))


def reference_lovasz(y: np.ndarray, p: np.ndarray) -> float:
    """Berman et al.'s Lovász hinge, image by image, on the logits."""
    losses = []
    for truth, probability in zip(y.reshape(len(y), -1), p.reshape(len(p), -1)):
        errors = 1 - np.log(probability / (1 - probability)) * (2 * truth - 1)
        order = np.argsort(-errors, kind="stable")
        sorted_truth = truth[order]
        jaccard = 1 - (sorted_truth.sum() - np.cumsum(sorted_truth)) / (
            sorted_truth.sum() + np.cumsum(1 - sorted_truth)
        )
        grad = np.concatenate([jaccard[:1], np.diff(jaccard)])
        losses.append(np.dot(np.maximum(errors[order], 0), grad))
    return float(np.mean(losses))


def reference_tversky(y: np.ndarray, p: np.ndarray, alpha: float = 0.3, beta: float = 0.7) -> float:
    tp, fp, fn = (y * p).sum(), ((1 - y) * p).sum(), (y * (1 - p)).sum()
    return float(1 - (tp + EPSILON) / (tp + alpha * fp + beta * fn + EPSILON))


REFERENCES = {
    "dice_focal": lambda y, p: reference_dice(y, p) + reference_focal(y, p),
    "dice_bce": lambda y, p: reference_dice(y, p) + reference_bce(y, p),
    "bce": reference_bce,
    "focal": reference_focal,
    "lovasz": reference_lovasz,
    "tversky": reference_tversky,
}


def random_batch() -> tuple[np.ndarray, np.ndarray]:
    truth = (RNG.random((3, 16, 16, 1)) < 0.3).astype(np.float32)
    probabilities = np.clip(RNG.random((3, 16, 16, 1)), 0.01, 0.99).astype(np.float32)
    return truth, probabilities


@pytest.mark.parametrize("name", LOSSES)
def test_each_loss_equals_its_numpy_reference_on_random_masks(name):
    for _ in range(3):
        truth, probabilities = random_batch()
        found = float(make_loss(name)(tf.constant(truth), tf.constant(probabilities)))
        assert found == pytest.approx(REFERENCES[name](truth.astype(np.float64), probabilities), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_a_perfect_prediction_gives_the_losss_minimum(name):
    loss = make_loss(name)
    truth, probabilities = random_batch()
    perfect = float(loss(tf.constant(truth), tf.constant(truth)))
    assert perfect == pytest.approx(0, abs=1e-5)
    assert perfect < float(loss(tf.constant(truth), tf.constant(probabilities)))
    assert perfect < float(loss(tf.constant(truth), tf.constant(1 - truth)))


@pytest.mark.parametrize("name", LOSSES)
def test_each_loss_is_finite_on_float16_probabilities_of_0_and_1(name):
    truth, _ = random_batch()
    found = make_loss(name)(tf.constant(truth, tf.float16), tf.constant(1 - truth, tf.float16))
    assert found.dtype == tf.float32 and np.isfinite(float(found))


def test_tversky_weighs_misses_by_beta():
    truth = np.zeros((1, 4, 4, 1), np.float32)
    truth[0, :2] = 1
    missed = truth.copy()
    missed[0, 0] = 0  # 4 pixels missed
    alarmed = truth.copy()
    alarmed[0, 2] = 1  # 4 false alarms
    loss = make_loss("tversky", tversky_alpha=0.3, tversky_beta=0.7)
    assert float(loss(tf.constant(truth), tf.constant(missed))) > float(loss(tf.constant(truth), tf.constant(alarmed)))


def test_a_model_trains_with_the_lovasz_hinge():
    """The Lovász hinge, which maps over the images and sorts their pixels, in a compiled model's graph."""
    model = create_model("resnet18", "none", loss=make_loss("lovasz"))
    truth, _ = random_batch()
    images = RNG.random((3, 64, 64, 3)).astype(np.float32)
    masks = np.repeat(np.repeat(truth, 4, axis=1), 4, axis=2)
    history = model.fit(images, masks, epochs=2, batch_size=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
