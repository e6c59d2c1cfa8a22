"""The plan (training/plan.py) of generated fingerprints, what flags do to it, and --time_budget's arithmetic
(training/budget.py). A plan from a prepared set and a budgeted run end to end: cli/test_plan_runs.py."""

from segtf.config import LoaderConfig, ModelConfig, OptimizationConfig, RunConfig, TrainConfig
from segtf.dataset.fingerprint import ClassFingerprint, Fingerprint, Spread
from segtf.errors import UserError
from segtf.training import budget
from segtf.training.plan import PATCH_SIZE, SCRATCH_BACKBONE, make_plan

import pytest
import tensorflow as tf


def spread(value: float) -> Spread:
    return Spread(median=value, p10=value, p90=value)


def fingerprint(side: float, widths: dict) -> Fingerprint:
    """Images of side x side pixels holding classes of the given structure widths (pixels)."""
    classes = {
        name: ClassFingerprint(
            present_in=1.0, share=spread(0.1), components=spread(3), smallest=spread(50), width=spread(width)
        )
        for name, width in widths.items()
    }
    return Fingerprint(pairs=40, image_height=spread(side), image_width=spread(side), classes=classes)


VALUES = {"encoder_weights": "none", "cpu_devices": 1}


def test_thin_lines_on_large_images_get_patches_at_a_scale_that_keeps_them_four_pixels_wide():
    plan = make_plan(fingerprint(1000, {"foreground": 8.0}), VALUES, given=(), on_gpu=False)
    assert plan.settings["patch_size"] == PATCH_SIZE and plan.settings["scale"] == 0.5
    assert "image_size" not in plan.settings
    assert plan.reasons[0] == ("patches of 256 px at scale 0.5: foreground structures 8.0 px wide (median) are 2.0 px "
                               "at 256, 4.0 px at this scale (images 1000 px, median)")


def test_structures_thinner_than_four_pixels_are_kept_at_full_resolution():
    plan = make_plan(fingerprint(999, {"vessel": 3.0}), VALUES, given=(), on_gpu=False)
    assert plan.settings["scale"] == 1.0 and "are 0.8 px at 256, 3.0 px at this scale" in plan.reasons[0]


def test_blobs_on_small_images_are_whole_images_at_their_own_size():
    plan = make_plan(fingerprint(100, {"foreground": 30.0}), VALUES, given=(), on_gpu=False)
    assert plan.settings == {"image_size": 128, "batch_size": 8, "backbone": SCRATCH_BACKBONE}
    assert plan.reasons[0] == ("whole images at 128 px: foreground structures 30.0 px wide (median) are 30.0 px at 128 "
                               "(images 100 px, median)")


def test_blobs_on_large_images_are_squashed_to_256():
    plan = make_plan(fingerprint(1200, {"foreground": 60.0}), VALUES, given=(), on_gpu=False)
    assert plan.settings["image_size"] == 256 and "patch_size" not in plan.settings


def test_the_thinnest_class_decides():
    plan = make_plan(fingerprint(1000, {"class_1": 80.0, "class_2": 6.0}), VALUES, given=(), on_gpu=False)
    assert "patch_size" in plan.settings and "class_2 structures" in plan.reasons[0]


def test_flags_given_are_never_planned():
    given = ("image_size", "batch_size", "backbone")
    assert make_plan(fingerprint(1000, {"foreground": 2.0}), VALUES, given, on_gpu=False).settings == {}
    plan = make_plan(fingerprint(1000, {"foreground": 2.0}), VALUES, ("patch_size",), on_gpu=False)
    assert set(plan.settings) == {"batch_size", "backbone"}


def test_without_a_fingerprint_whole_images_keep_the_plain_size_and_the_reason_says_how_to_plan():
    plan = make_plan(None, VALUES, given=(), on_gpu=False)
    assert "image_size" not in plan.settings and "run it again to plan from the data" in plan.reasons[0]


def test_batch_and_backbone_follow_the_devices_and_the_encoder_weights():
    three_devices = make_plan(None, {"encoder_weights": "imagenet", "cpu_devices": 3}, (), on_gpu=False)
    assert three_devices.settings == {"batch_size": 9}  # a whole number a device; ImageNet: the plain backbone
    assert make_plan(None, VALUES, (), on_gpu=True).settings == {"backbone": SCRATCH_BACKBONE}


SPEED = budget.Speed(step=0.5, epoch_end=5.0, start=10.0)


def budgeted(minutes: float, steps_per_epoch=None) -> TrainConfig:
    optimization = OptimizationConfig(time_budget=minutes, steps_per_epoch=steps_per_epoch)
    return TrainConfig(LoaderConfig(data_root="data"), ModelConfig(), optimization, RunConfig())


def fitted(config: TrainConfig, seconds_left: float, floor_steps: int = 250) -> tuple[int, int]:
    result = budget.fit_to_budget(config, SPEED, seconds_left, floor_steps).optimization
    return result.epochs, result.steps_per_epoch


def time_used(epochs: int, steps: int) -> float:
    return SPEED.start + budget.END_SECONDS + epochs * (steps * SPEED.step + SPEED.epoch_end)


def test_a_budget_buys_whole_epochs_that_end_within_it():
    config = budgeted(60)
    epochs, steps = fitted(config, 3600)
    assert epochs >= budget.MIN_EPOCHS and time_used(epochs, steps) <= 3600
    assert time_used(epochs, steps + 1) > budget.SAFETY * 3600  # a step more an epoch would not fit
    short_epochs, short_steps = fitted(config, 300)  # ten epochs of a pass do not fit: shorter epochs
    assert short_epochs == budget.MIN_EPOCHS and short_steps < 250 and time_used(short_epochs, short_steps) <= 300


def test_given_steps_per_epoch_are_kept_and_validation_is_held_to_its_share():
    epochs, steps = fitted(budgeted(10, steps_per_epoch=4), 600)
    assert steps == 4 and epochs * SPEED.epoch_end <= budget.VALIDATION_SHARE * 600


def test_a_budget_too_short_for_one_step_is_one_line_saying_how_long_it_must_be():
    with pytest.raises(UserError, match=r"--time_budget 0.2: too short here, .* give at least 0.5 minutes"):
        fitted(budgeted(0.2), 12)


def test_the_speed_is_measured_on_one_model_built_for_it():
    built = []

    def build() -> tf.keras.Model:
        built.append(1)
        model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        return model

    data = tf.data.Dataset.from_tensors((tf.ones((8, 4)), tf.ones((8, 1))))
    speed = budget.measure_speed(build, budgeted(1), data.repeat(), data)
    assert built == [1] and 0 < speed.step < speed.start and speed.epoch_end > 1.0
