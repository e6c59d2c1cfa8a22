"""INT8 where it holds: when a full-integer model's masks agree too little with the Keras model's, the layers that
quantization harms most, ranked by TensorFlow Lite's quantization debugger (the root-mean-square error of a layer's
quantized output, in steps of its quantization scale), are kept in float, more at a time, until they agree; but at
most MAX_FLOAT_SHARE of them, beyond which the model is no longer an INT8 model (on a short efficientnetb0 run on thin
curves, the error was spread: 128 of 257 layers in float raised the agreement from 0.707 to 0.761 only)."""

import io
from typing import Callable, Iterable

from segtf.quiet import quiet_stderr

import numpy as np
import pandas as pd
import tensorflow as tf

DEBUG_METRIC = "rmse/scale"
MAX_FLOAT_SHARE = 0.25  # of the quantized layers
GROWTH = 4  # layers kept in float: 1, 4, 16, ...


def rmse_per_scale(float_values: np.ndarray, quantized: np.ndarray, scale: float, zero_point: int) -> float:
    """A layer's quantization error: the RMS difference of its dequantized output from its float output, in
    quantization steps (the debugger's guide: above about 0.7 a layer loses more than rounding does)."""
    dequantized = (quantized.astype(np.float32) - zero_point) * scale
    return float(np.sqrt(np.mean((dequantized - float_values) ** 2)) / scale)


def ranked_layers(debugger: tf.lite.experimental.QuantizationDebugger) -> list[str]:
    """The quantized layers' output tensors, the one quantization harms most first."""
    with quiet_stderr():
        debugger.run()
    table = io.StringIO()
    debugger.layer_statistics_dump(table)
    table.seek(0)
    statistics = pd.read_csv(table).sort_values(DEBUG_METRIC, ascending=False)
    return list(statistics.tensor_name)


def keep_in_float(
    converter: tf.lite.TFLiteConverter,
    dataset: Callable[[], Iterable],
    agreement: Callable[[bytes], float],
    target: float,
) -> tuple[bytes, list[str], float]:
    """(the model, the layers kept in float, its agreement) of the fewest layers kept in float, 1, 4, 16 and so on
    of the ranked ones up to MAX_FLOAT_SHARE of them, whose agreement (a function of a model's content) reaches
    target; else the best one seen. Its input and output are float, as the float16 model's: a float image in [0, 1]
    in, probabilities out."""
    options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={DEBUG_METRIC: rmse_per_scale})
    with quiet_stderr():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=dataset, debug_options=options
        )
    ranked, best, count = ranked_layers(debugger), None, 1
    most = max(1, min(int(MAX_FLOAT_SHARE * len(ranked)), len(ranked) - 1))  # all in float: nothing to debug
    while True:
        kept = ranked[:count]
        with quiet_stderr():
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=kept)
            content = debugger.get_nondebug_quantized_model()
        score = agreement(content)
        print(f"  {len(kept)} of {len(ranked)} layers in float: masks agree at IoU {score:.4f}")
        if best is None or score > best[2]:
            best = (content, kept, score)
        if score >= target or count >= most:
            return best
        count = min(GROWTH * count, most)
