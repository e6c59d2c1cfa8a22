"""The exponential moving average of the weights (--ema DECAY). Keras' optimizers keep it (use_ema: after each step,
average = DECAY x average + (1 - DECAY) x weight, for every trainable weight, starting from the weights the run starts
with); this module swaps it into the model for validation and for the weights files, and the trained weights back in
before training goes on. The batch-normalisation statistics are not averaged: they are moving averages already.

Keras 2 has no public way to read the average (Keras 3's SwapEMAWeights callback does this), so this reads the
optimizer's private list of averages, as Keras' own finalize_variable_values does; tests/test_training_options.py
checks it on both stacks.
"""

import contextlib
from typing import Iterator, Optional

import tensorflow as tf


def weight_averages(model: tf.keras.Model) -> list[tuple[tf.Variable, tf.Variable]]:
    """(weight, its average) for each trainable weight; none when the model's optimizer keeps no average."""
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # under a LossScaleOptimizer
    if not getattr(optimizer, "use_ema", False) or not hasattr(optimizer, "_model_variables_moving_average"):
        return []  # no --ema, or no training step yet (Keras makes the averages at the first)
    averages = optimizer._model_variables_moving_average
    return [(w, averages[optimizer._index_dict[optimizer._var_key(w)]]) for w in model.trainable_variables]


def swap(pairs: list[tuple[tf.Variable, tf.Variable]]) -> None:
    for weight, average in pairs:
        trained = tf.identity(weight)
        weight.assign(average)
        average.assign(trained)


@contextlib.contextmanager
def averaged_weights(model: tf.keras.Model) -> Iterator[None]:
    """The model holds the average of its weights while the block runs (its own weights without --ema)."""
    pairs = weight_averages(model)
    swap(pairs)
    try:
        yield
    finally:
        swap(pairs)


class AveragedValidation(tf.keras.callbacks.Callback):
    """Keras' validation in fit scores the averaged weights."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: Optional[list] = None

    def on_test_begin(self, logs: Optional[dict] = None) -> None:
        self.pairs = weight_averages(self.model)
        swap(self.pairs)

    def on_test_end(self, logs: Optional[dict] = None) -> None:
        swap(self.pairs or [])
        self.pairs = None
