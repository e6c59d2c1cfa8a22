"""optimizers.RectifiedAdam against tensorflow-addons' RectifiedAdam, which it replaces: same model, same data, same
weights after every step of fit, to 1e-6; the cosine schedule's warm-up and decay."""

import functools
from typing import Callable, Optional

from segtf.modeling import optimizers

import numpy as np
import pytest
import tensorflow as tf

STEPS = 40
BATCH = 8
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def tfa():
    return pytest.importorskip("tensorflow_addons")


def seeded(seed: int) -> tf.keras.initializers.Initializer:
    return tf.keras.initializers.GlorotUniform(seed)


def small_model() -> tf.keras.Model:
    """A little segmentation net, the same initial weights on every call and no global seed set."""
    return tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 3)),
            tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", kernel_initializer=seeded(1)),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Conv2D(1, 1, kernel_initializer=seeded(2)),
            tf.keras.layers.Activation("sigmoid", dtype="float32"),  # float32 output under mixed precision too
        ]
    )


def trajectory(
    make_optimizer: Callable[[], tf.keras.optimizers.Optimizer],
    loss_scale: bool = False,
    strategy: Optional[tf.distribute.Strategy] = None,
) -> list:
    """The trainable weights, the optimizer's variables, before training and after each of STEPS steps of fit on fixed
    data in a fixed order."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, 8, 8, 3)).astype("float32")
    y = (rng.random((STEPS * BATCH, 8, 8, 1)) < 0.3).astype("float32")
    with (strategy or tf.distribute.get_strategy()).scope():
        net = small_model()
        optimizer = make_optimizer()
        if loss_scale:
            optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
        net.compile(optimizer, loss="binary_crossentropy")
    weights = []

    def record(*_) -> None:
        weights.append([w.numpy() for w in net.trainable_weights])

    record()
    net.fit(
        x,
        y,
        batch_size=BATCH,
        shuffle=False,
        verbose=0,
        callbacks=[tf.keras.callbacks.LambdaCallback(on_train_batch_end=record)],
    )
    assert len(weights) == STEPS + 1
    # Training moved them, so that agreeing is not agreeing on doing nothing.
    assert largest_difference(weights[:1], weights[-1:]) > 1e-3
    return weights


def largest_difference(first: list, second: list) -> float:
    """The max abs difference over every variable and every step."""
    return max(np.abs(a - b).max() for step_a, step_b in zip(first, second) for a, b in zip(step_a, step_b))


@functools.cache
def reference(weight_decay: float = 0.0, epsilon: float = 1e-7) -> list:
    """tfa's trajectory with its defaults but these, in float32 without a strategy: computed once, for the comparisons
    and for the checks that they can fail."""
    tfa = pytest.importorskip("tensorflow_addons")
    return trajectory(lambda: tfa.optimizers.RectifiedAdam(weight_decay=weight_decay, epsilon=epsilon))


@pytest.mark.parametrize(
    "settings",
    # epsilon 0.01 is large enough next to sqrt(v) for its place, after the bias correction of v, to show.
    [{}, {"weight_decay": 0.05}, {"epsilon": 0.01}],  # {} is weight decay 0, and the same cached reference as below
    ids=["no weight decay", "weight decay 0.05", "epsilon 0.01"],
)
def test_matches_tensorflow_addons(settings):
    expected = reference(**settings)
    assert largest_difference(trajectory(lambda: optimizers.RectifiedAdam(**settings)), expected) < TOLERANCE


def test_matches_tensorflow_addons_with_a_schedule(tfa):
    def cosine() -> tf.keras.optimizers.schedules.LearningRateSchedule:
        return tf.keras.optimizers.schedules.CosineDecay(0.01, STEPS)

    ours = trajectory(lambda: optimizers.RectifiedAdam(cosine(), weight_decay=0.05))
    theirs = trajectory(lambda: tfa.optimizers.RectifiedAdam(cosine(), weight_decay=0.05))
    assert largest_difference(ours, theirs) < TOLERANCE


def test_matches_tensorflow_addons_under_mixed_precision(tfa, float16_policy):
    ours = trajectory(lambda: optimizers.RectifiedAdam(weight_decay=0.05), loss_scale=True)
    theirs = trajectory(lambda: tfa.optimizers.RectifiedAdam(weight_decay=0.05), loss_scale=True)
    assert largest_difference(ours, theirs) < TOLERANCE


def test_matches_tensorflow_addons_under_mirrored_strategy(tfa):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    ours = trajectory(lambda: optimizers.RectifiedAdam(weight_decay=0.05), strategy=strategy)
    theirs = trajectory(lambda: tfa.optimizers.RectifiedAdam(weight_decay=0.05), strategy=strategy)
    assert largest_difference(ours, theirs) < TOLERANCE


@pytest.mark.parametrize(
    "ours, theirs",
    [({"beta_2": 0.99}, {}), ({}, {"weight_decay": 0.05}), ({"sma_threshold": 1e9}, {}), ({}, {"epsilon": 0.01})],
    ids=["another beta_2", "weight decay left out", "never rectified", "epsilon left at 1e-7"],
)
def test_the_comparison_sees_a_difference(ours, theirs):
    expected = reference(**theirs)
    assert largest_difference(trajectory(lambda: optimizers.RectifiedAdam(**ours)), expected) > 100 * TOLERANCE


def test_config_round_trip():
    schedule = tf.keras.optimizers.schedules.CosineDecay(0.01, 100)
    optimizer = optimizers.RectifiedAdam(schedule, beta_1=0.8, beta_2=0.99, epsilon=1e-6, sma_threshold=4.0,
                                         weight_decay=0.05, clipnorm=1.0)  # fmt: skip
    config = optimizer.get_config()
    restored = optimizers.RectifiedAdam.from_config(dict(config))  # from_config rewrites the dict
    assert restored.get_config() == config
    assert config["learning_rate"]["config"] == schedule.get_config() and config["sma_threshold"] == 4.0
    by_name = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(optimizer))
    assert type(by_name) is optimizers.RectifiedAdam and by_name.get_config() == config


def test_cosine_schedule_warms_up_then_decays_to_zero():
    schedule = optimizers.learning_rate_schedule("cosine", 0.01, total_steps=1000)
    rates = [float(schedule(step)) for step in (0, 25, 50, 525, 1000)]
    assert rates[0] == 0 and rates[1] == pytest.approx(0.005) and rates[2] == pytest.approx(0.01)
    assert rates[3] == pytest.approx(0.005, rel=1e-3) and rates[4] == pytest.approx(0, abs=1e-9)
    assert optimizers.learning_rate_schedule("plateau", 0.01, total_steps=1000) == 0.01
