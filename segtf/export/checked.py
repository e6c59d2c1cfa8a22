"""Exports for phones and other runtimes, each checked against the Keras model it came from: a full-integer (INT8)
TFLite model calibrated on augmented training images of the run, and an ONNX model (tf2onnx, run by ONNX Runtime).
The images come from the run's own data, as its run_config.json records it; TFLite models run with LiteRT where it
is installed, else with tf.lite.Interpreter."""

import dataclasses
import sys
from pathlib import Path
from typing import Iterator, Optional, Union

from segtf.config import LoaderConfig, TrainConfig
from segtf.dataset import pipeline
from segtf.dataset.classes import IGNORED, listed
from segtf.dataset.folds import run_splits
from segtf.dataset.layout import split_csv
from segtf.errors import UserError
from segtf.export.convert import convert_tflite, tflite_converter
from segtf.export.selective import keep_in_float
from segtf.files import write_bytes
from segtf.inference.predictor import Member, input_side, trained_config
from segtf.modeling.outputs import squeeze_channel, to_mask

import numpy as np
import tensorflow as tf
from tqdm import tqdm

AGREEMENT_WARNING = 0.95  # INT8 masks agreeing less with the Keras model's than this get a warning
CHECK_IMAGES = 200  # at most this many valid images check an export
ONNX_OPSET = 17


def tflite_interpreter(model: Union[Path, bytes], threads: Optional[int] = None):
    """An allocated interpreter of a TFLite file or its bytes: LiteRT's, which replaces tf.lite.Interpreter (deprecated
    from TensorFlow 2.20), where it is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter  # noqa: N806
    source = {"model_path": str(model)} if isinstance(model, Path) else {"model_content": model}
    interpreter = Interpreter(**source, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def run_loader(weights: Path, data_root: Optional[Path]) -> tuple[LoaderConfig, tuple[str, str], int]:
    """The loader settings of the run that wrote weights (the defaults for those it predates), on data_root or the
    run's data, in float32 and with a fixed seed; and the run's (train, valid) splits and class count."""
    trained = trained_config(weights)
    if not data_root and not trained:
        raise UserError(f"no run_config.json beside {weights} names its data: give --data_root")
    trained = trained or TrainConfig.from_flat({"data_root": str(data_root)}, "defaults")
    loader = dataclasses.replace(
        trained.loader, data_root=str(data_root or trained.loader.data_root), mixed_precision="float32", seed=0
    )
    return loader, run_splits(trained.run.folds, trained.run.fold), trained.model.classes


def run_samples(
    weights: Path, data_root: Optional[Path], training: bool, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to count model inputs (float32, N x S x S x 3 in [0, 1]) of the run that wrote weights and their true masks
    (N x S x S x 1: 0 and 1, or class indices and IGNORED): training samples augmented as train.py draws them, or
    else its validation samples in order; from data_root or the run's data."""
    loader, (train_split, valid_split), classes = run_loader(weights, data_root)
    csv = split_csv(Path(loader.data_root), train_split if training else valid_split)
    if not csv.is_file():
        raise UserError(f"{csv} not found: the export needs the run's images; give --data_root")
    if training:
        batches, _ = pipeline.training_batches(loader, batch_size=1, split=train_split)
    else:
        batches, _ = pipeline.build_dataset(
            [csv], loader.image_size, 1, training=False, resize_first=loader.resize_first,
            cache_format=loader.cache_format, patches=pipeline.patches_of(loader), classes=classes,
        )  # fmt: skip
    samples = list(batches.take(count).as_numpy_iterator())
    if not samples:
        raise UserError(f"{csv} lists no images to check the export on")
    return np.concatenate([image for image, _ in samples]), np.concatenate([mask for _, mask in samples])


def run_images(weights: Path, data_root: Optional[Path], training: bool, count: int) -> np.ndarray:
    """The model inputs of run_samples."""
    return run_samples(weights, data_root, training, count)[0]


def calibration_batches(images: np.ndarray) -> Iterator[list[np.ndarray]]:
    """The representative dataset of a conversion: one image at a time. The first image's corner pixels are set to
    black and white, so that the input's range is [0, 1] and the uint8 input is the image's pixels as they are."""
    first = images[0].copy()
    first[0, 0], first[-1, -1] = 0.0, 1.0
    for image in tqdm([first, *images[1:]], desc="calibrating", unit="image"):
        yield [image[None]]


def tflite_outputs(interpreter, images: np.ndarray) -> np.ndarray:
    """A TFLite model's probabilities of model inputs in [0, 1], as float; a quantized model's input and output
    scaled by its quantization."""
    run = interpreter.get_signature_runner()
    (input_name, input_details), = run.get_input_details().items()  # fmt: skip
    (output_name, output_details), = run.get_output_details().items()  # fmt: skip
    (in_scale, in_zero), (out_scale, out_zero) = input_details["quantization"], output_details["quantization"]
    outputs = []
    for image in images:
        feed = image[None] if not in_scale else np.round(image[None] / in_scale + in_zero).astype(np.uint8)
        output = run(**{input_name: feed})[output_name][0]
        outputs.append(output if not out_scale else (output.astype(np.float32) - out_zero) * out_scale)
    return np.stack(outputs)


def mean_iou(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The mean IoU of pairs of boolean masks over the pairs that either holds; 1 when all are empty."""
    ious = [(a & b).sum() / (a | b).sum() for a, b in pairs if (a | b).any()]
    return float(np.mean(ious)) if ious else 1.0


def mask_agreement(reference: np.ndarray, other: np.ndarray, threshold: float) -> float:
    """The IoU of two models' masks over all images (probabilities N x H x W x 1, or x K for K classes: the mean
    over foreground classes either shows of the IoU of their most probable classes); 1 when both are empty."""
    several = reference.shape[-1] > 1
    first, second = (to_mask(squeeze_channel(p), several, threshold) for p in (reference, other))
    pairs = [(first == k, second == k) for k in range(1, reference.shape[-1])] if several else [(first, second)]
    return mean_iou(pairs)


def truth_iou(probabilities: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    """The IoU of a model's masks against the true masks (N x H x W x 1), from all pixels but the ignored ones; with
    several classes the mean over the foreground classes that either holds."""
    several = probabilities.shape[-1] > 1
    predicted, true = to_mask(squeeze_channel(probabilities), several, threshold), truth[..., 0]
    kept = true != IGNORED
    classes = range(1, probabilities.shape[-1]) if several else [1]
    pairs = [((predicted == k) & kept, (true == k) & kept) if several else (predicted & kept, (true > 0.5) & kept)
             for k in classes]  # fmt: skip
    return mean_iou(pairs)


def export_tflite_int8(
    member: Member, weights: Path, data_root: Optional[Path], count: int, threshold: float, path: Path
) -> float:
    """A full-integer TFLite model at path (uint8 image in, uint8 probabilities out), calibrated on count augmented
    training images of the run; returns its masks' agreement with the Keras model on the run's valid images."""
    size = input_side(member)
    calibration = run_images(weights, data_root, training=True, count=count)
    content = convert_tflite(member.model, size, "int8", lambda: calibration_batches(calibration))
    write_bytes(path, content)
    interpreter = tflite_interpreter(path)
    run = interpreter.get_signature_runner()
    (input_scale, input_zero), = [d["quantization"] for d in run.get_input_details().values()]  # fmt: skip
    (output_scale, output_zero), = [d["quantization"] for d in run.get_output_details().values()]  # fmt: skip
    print(f"INT8 TFLite model in {path}, calibrated on {len(calibration)} augmented training images: input "
          f"[1, {size}, {size}, 3] uint8 pixels (scale {input_scale * 255:.4f}/255, zero point {input_zero}); output "
          f"uint8 probabilities: (q - {output_zero}) * {output_scale:.6f}")  # fmt: skip
    images, truth = run_samples(weights, data_root, training=False, count=CHECK_IMAGES)
    keras, int8 = member.model.predict(images, verbose=0), tflite_outputs(interpreter, images)
    agreement, scores = mask_agreement(keras, int8, threshold), [truth_iou(p, truth, threshold) for p in (int8, keras)]
    print(f"INT8 masks against the Keras model's on {len(images)} valid images: IoU {agreement:.4f}; against the true "
          f"masks, IoU {scores[0]:.4f} (the Keras model's {scores[1]:.4f})")
    if agreement < AGREEMENT_WARNING:
        print(f"below {AGREEMENT_WARNING}: the layers quantization harms most are kept in float until they agree")
        partly = export_partly_float(member, calibration, (images, truth, keras), threshold, path)
        agreement = agreement if partly is None else partly
    if agreement < AGREEMENT_WARNING:
        print(
            f"warning: the INT8 model's masks agree with the Keras model's below {AGREEMENT_WARNING}: calibrate on "
            "more images (--calibration_images) or ship the float16 model",
            file=sys.stderr,
        )
    return agreement


def export_partly_float(
    member: Member, calibration: np.ndarray, check: tuple, threshold: float, path: Path
) -> Optional[float]:  # fmt: skip
    """The INT8 model with the fewest layers kept in float (selective.keep_in_float) whose masks agree with the Keras
    model's on check (images, true masks, the Keras model's probabilities) at AGREEMENT_WARNING, at path, and its
    agreement; where none does, None, and the full-integer model at path stays."""
    images, truth, keras = check
    size = input_side(member)
    converter = tflite_converter(member.model, size, "int8", lambda: calibration_batches(calibration))
    last = {}  # the probabilities of the model scored last: the one kept, when it reaches the target

    def agreement(content: bytes) -> float:
        last["outputs"] = tflite_outputs(tflite_interpreter(content), images)
        return mask_agreement(keras, last["outputs"], threshold)

    content, kept, score = keep_in_float(converter, lambda: calibration_batches(calibration), agreement,
                                         AGREEMENT_WARNING)  # fmt: skip
    if score < AGREEMENT_WARNING:
        print(f"with {len(kept)} layers in float the masks agree at IoU {score:.4f} only: the error is spread over the "
              f"network, and {path} stays the full-integer model")  # fmt: skip
        return None
    write_bytes(path, content)
    shown = listed([name.split(";")[0] for name in kept], limit=8)
    truth_score = truth_iou(last["outputs"], truth, threshold)
    print(f"INT8 TFLite model with {len(kept)} layers in float in {path}: input [1, {size}, {size}, 3] float in "
          f"[0, 1], output float probabilities; in float: {shown}. Its masks against the Keras model's: IoU "
          f"{score:.4f}; against the true masks, IoU {truth_score:.4f}")  # fmt: skip
    return score


def onnx_tools():
    """tf2onnx and onnxruntime; UserError naming where they install (Python 3.10 to 3.13: tf2onnx 1.17 needs 3.10)."""
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise UserError(
            f"--export onnx needs tf2onnx 1.17 and onnxruntime ({error}), which make install puts on Python 3.10 to "
            f"3.13; this is Python {sys.version_info.major}.{sys.version_info.minor}: make install PYTHON=python3.11"
        ) from error
    return tf2onnx, onnxruntime


def export_onnx(member: Member, weights: Path, data_root: Optional[Path], path: Path) -> float:
    """An ONNX model at path (float images in [0, 1], N x S x S x 3, in; probabilities out), converted by tf2onnx;
    returns the largest difference of ONNX Runtime's probabilities from the Keras model's on the run's valid images."""
    tf2onnx, onnxruntime = onnx_tools()
    size = input_side(member)
    spec = [tf.TensorSpec([None, size, size, 3], tf.float32, name="image")]
    infer = tf.function(lambda image: {"probabilities": member.model(image, training=False)}, input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(infer, input_signature=spec, opset=ONNX_OPSET)
    write_bytes(path, proto.SerializeToString())
    print(f"ONNX model in {path}: input 'image' [N, {size}, {size}, 3] float in [0, 1], output 'probabilities'")
    images = run_images(weights, data_root, training=False, count=CHECK_IMAGES)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # not a warning a Resize node about a deprecated attribute that tf2onnx writes
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    batches = [images[start : start + 8] for start in range(0, len(images), 8)]
    onnx_probabilities = np.concatenate([session.run(None, {"image": batch})[0] for batch in batches])
    difference = float(np.abs(onnx_probabilities - member.model.predict(images, verbose=0)).max())
    print(f"ONNX Runtime against the Keras model on {len(images)} valid images: largest difference {difference:.2e}")
    return difference
