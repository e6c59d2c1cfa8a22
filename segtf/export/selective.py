"""INT8 where it holds: when a full-integer model's masks agree too little with the Keras model's, the layers that
quantization harms most, ranked by TensorFlow Lite's quantization debugger (the root-mean-square error of a layer's
quantized output, in steps of its quantization scale), are kept in float, more at a time, until they agree."""

import io
from typing import Callable, Iterable

from segtf.quiet import quiet_stderr

import numpy as np
import pandas as pd
import tensorflow as tf

DEBUG_METRIC = "rmse/scale"


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
    """(the model, the layers kept in float, its agreement) of the fewest layers kept in float, 1, 2, 4 and so on
    of the ranked ones, whose agreement (a function of a model's content) reaches target; else the best one seen.
    Its input and output are float, as the float16 model's: a float image in [0, 1] in, probabilities out."""
    options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={DEBUG_METRIC: rmse_per_scale})
    with quiet_stderr():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=dataset, debug_options=options
        )
    ranked, best, count = ranked_layers(debugger), None, 1
    while True:
        kept = ranked[:count]
        with quiet_stderr():
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=kept)
            content = debugger.get_nondebug_quantized_model()
        score = agreement(content)
        print(f"  {len(kept)} of {len(ranked)} layers in float: masks agree at IoU {score:.4f}")
        if best is None or score > best[2]:
            best = (content, kept, score)
        if score >= target or count >= len(ranked):
            return best
        count = min(2 * count, len(ranked))
