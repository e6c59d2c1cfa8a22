"""--time_budget: the run's epochs and steps fitted to minutes of wall-clock time, from the speed of a step, of a
validation and of saving, measured on these devices with a throwaway copy of the model before the run begins; the
learning-rate schedule spans exactly the steps chosen, so it runs to its end."""

import dataclasses
import math
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from segtf.config import TrainConfig
from segtf.errors import UserError
from segtf.text import counted
from segtf.training.callbacks import run_window_validation

import numpy as np
import tensorflow as tf

WARMUP_STEPS = 3  # the first steps trace, compile and fill the input pipeline's buffers
TIMED_STEPS = 10
MIN_EPOCHS = 10  # validations enough to choose the best weights and to see the curves
VALIDATION_SHARE = 0.2  # at most this share of the budget goes to validating and saving
END_SECONDS = 10.0  # the summary, the curves and the pictures after the last epoch
SAFETY = 0.95  # of the time left: a long run's steps ran 3 % slower than the ten measured (docs/plan.md)


@dataclasses.dataclass(frozen=True)
class Speed:
    """Seconds of one training step, of the work at each epoch's end (validation and saving), and of building and
    tracing a model before its first step."""

    step: float
    epoch_end: float
    start: float


def timed_steps(model: tf.keras.Model, train: tf.distribute.DistributedDataset) -> tuple[float, float]:
    """(seconds to the end of the first step, median seconds of a step after the warm-up)."""
    ends = []
    timer = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
    begin = time.perf_counter()
    model.fit(train, epochs=1, steps_per_epoch=WARMUP_STEPS + TIMED_STEPS, callbacks=[timer], verbose=0)
    return ends[0] - begin, float(np.median(np.diff(ends[WARMUP_STEPS - 1 :])))


def validation_seconds(model: tf.keras.Model, config: TrainConfig, valid: tf.data.Dataset) -> float:
    """One validation as the run does it (the first, tracing included: an overestimate by a little)."""
    begin = time.perf_counter()
    if config.loader.patch_size:
        run_window_validation(config, model).on_epoch_end(0, {})
    else:
        model.evaluate(valid, verbose=0)
    return time.perf_counter() - begin


def measure_speed(
    build: Callable[[], tf.keras.Model],
    config: TrainConfig,
    train: tf.distribute.DistributedDataset,
    valid: tf.data.Dataset,
) -> Speed:
    """The speed on these devices of a model that build makes, trained a few steps and thrown away."""
    begin = time.perf_counter()
    model = build()
    built = time.perf_counter() - begin
    first_step, step = timed_steps(model, train)
    validation = validation_seconds(model, config, valid)
    with tempfile.TemporaryDirectory() as folder:
        begin = time.perf_counter()
        model.save_weights(str(Path(folder) / "weights.h5"))
        saving = time.perf_counter() - begin
    # an epoch's end saves the last weights, often the best, and the backup (with the optimizer's slots, about three
    # times the weights); and draws the validation pictures
    return Speed(step=step, epoch_end=validation + 5 * saving + 1.0, start=built + first_step)


def fit_to_budget(config: TrainConfig, speed: Speed, seconds_left: float, floor_steps: int) -> TrainConfig:
    """The configuration with the epochs and steps that fit seconds_left: epochs of --steps_per_epoch; or, not
    given, about as many as fit of a pass over the training set (floor_steps) but at least MIN_EPOCHS, their steps
    then stretched or shortened to fill the time. Validation and saving are held to VALIDATION_SHARE of it.
    UserError when not even one step and one validation fit."""
    optimization = config.optimization
    left = SAFETY * (seconds_left - speed.start - END_SECONDS)
    most_epochs = max(1, math.floor(VALIDATION_SHARE * left / speed.epoch_end))
    steps = optimization.steps_per_epoch or floor_steps
    epochs = min(most_epochs, math.floor(left / (steps * speed.step + speed.epoch_end)))
    if not optimization.steps_per_epoch:
        epochs = min(most_epochs, max(MIN_EPOCHS, epochs))
        steps = math.floor((left / epochs - speed.epoch_end) / speed.step)
    if epochs < 1 or steps < 1:
        needed = math.ceil((speed.start + END_SECONDS + speed.step + speed.epoch_end) / SAFETY / 6) / 10  # minutes
        raise UserError(
            f"--time_budget {optimization.time_budget:g}: too short here, where a step takes {speed.step:.2f} s and "
            f"an epoch's validation and saving {speed.epoch_end:.1f} s; give at least {needed:g} minutes"
        )
    return dataclasses.replace(
        config, optimization=dataclasses.replace(optimization, epochs=epochs, steps_per_epoch=steps)
    )


def describe(config: TrainConfig, speed: Speed, deadline: float) -> str:
    """The line that says what the budget bought and when the run will end."""
    optimization = config.optimization
    ends = datetime.now() + timedelta(seconds=deadline - time.monotonic())
    return (
        f"time budget {optimization.time_budget:g} min: a step takes {speed.step:.2f} s and an epoch's validation and "
        f"saving {speed.epoch_end:.1f} s here, so {counted(optimization.epochs, 'epoch')} "
        f"of {counted(optimization.steps_per_epoch, 'step')}, ending by {ends:%H:%M:%S}"
    )
